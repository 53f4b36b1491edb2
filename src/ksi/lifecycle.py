"""`ksi run`: the one list of steps (ksi.federate.steps.run_steps: a node's steps with the
federation's), executed by ksi.run.step.execute. Kept as the CLI's entry point."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ksi.run.options import RunOptions

if TYPE_CHECKING:
    from ksi.output import Console
    from ksi.runner import Runner

__all__ = ["RunOptions", "run"]


def run(opts: RunOptions, console: Console, runner: Runner) -> int:
    """The whole run (or, with --dry-run, its plan and commands); the exit code."""
    from ksi.federate.steps import run_steps
    from ksi.run.context import RunContext
    from ksi.run.step import execute

    return execute(RunContext(opts, console, runner), run_steps())
