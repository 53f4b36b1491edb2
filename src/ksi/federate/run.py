"""Multi-node runs: every node creates its cluster; the head peers them with Liqo."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ksi.errors import Exit, KsiError

if TYPE_CHECKING:
    from ksi.lifecycle import RunOptions
    from ksi.output import Console
    from ksi.plan.plan import Plan
    from ksi.runner import Runner


def run_federated(plan: Plan, opts: RunOptions, console: Console, runner: Runner,
                  started: float) -> int:
    from ksi.lifecycle import Outcome, finish

    outcome = Outcome(code=Exit.FEDERATION_FAILED, error=KsiError(
        "multi-node federation is not available yet", "use --each", code=Exit.FEDERATION_FAILED))
    return finish(console, runner, plan, outcome, started)
