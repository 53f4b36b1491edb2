"""`ksi shell`: a cluster for an interactive bash; teardown when the shell exits or the
allocation ends. The run's own steps, with a shell as the workload."""

from __future__ import annotations

import shlex
import sys
from typing import TYPE_CHECKING, Any

from ksi.run.steps import Workload, node_steps

if TYPE_CHECKING:
    from ksi.output import Console
    from ksi.run.context import RunContext
    from ksi.runner import Runner


def rcfile_text(cluster: str) -> str:
    return ("[ -f ~/.bashrc ] && . ~/.bashrc\n"
            f"PS1={shlex.quote(f'(ksi:{cluster}) ')}\"$PS1\"\n")


class Shell(Workload):
    """An interactive shell on the cluster instead of a workload (its exit status)."""

    def start(self, ctx: RunContext) -> int:
        from ksi.plan.paths import write_private
        from ksi.workload.script import wait_workload

        p, guard = ctx.the_plan, ctx.guard
        assert guard is not None
        variables = ctx.variables()
        variables["KSI_SHELL"] = "1"
        interactive = sys.stdin.isatty()
        if interactive:
            rc = p.state_dir / "shellrc"
            write_private(rc, rcfile_text(p.cluster))
            argv = [ctx.shell, "--rcfile", str(rc), "-i"]
            print(f"ksi: shell on cluster {p.cluster} (exit the shell to delete it)",
                  file=sys.stderr, flush=True)
        else:
            argv = [ctx.shell]  # reads its commands from stdin
        proc = ctx.runner.spawn(argv, env=variables, cwd=str(p.workdir),
                                foreground=interactive)
        return wait_workload(guard, proc)

    def describe(self, ctx: RunContext) -> list[list[str]]:
        return [[ctx.shell]]


def run_shell(flags: dict[str, Any], console: Console, runner: Runner, shell: str = "bash"
              ) -> int:
    from ksi.run.context import RunContext
    from ksi.run.options import RunOptions
    from ksi.run.step import execute

    ctx = RunContext(RunOptions(workload=None, shared_dir=None, flags=flags), console, runner,
                     shell=shell)
    return execute(ctx, node_steps(Shell()))
