"""How a run ends: an error or a signal becomes an Outcome (exit code, the one-line error),
teardown problems are merged into it, the report is written and the last line printed."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from ksi.errors import Exit, Interrupted, KsiError
from ksi.signals import DEADLINE

if TYPE_CHECKING:
    from ksi.output import Console
    from ksi.plan.plan import Plan
    from ksi.run.state import RunState
    from ksi.runner import Runner


@dataclass
class Outcome:
    code: int = 0
    error: Optional[KsiError] = None
    signal: Optional[int] = None
    problems: list[str] = field(default_factory=list)
    step: str = ""           # the step that failed or was interrupted

    @property
    def failed(self) -> bool:
        return self.error is not None or self.signal is not None


def failure(outcome: Outcome, exc: KsiError) -> None:
    """A step raised exc: its code and its line end the run."""
    outcome.code, outcome.error = exc.code, exc


def interrupted(outcome: Outcome, exc: Interrupted) -> None:
    """A signal or the job's deadline ended the run: 128+N, or TIME_LIMIT at the deadline."""
    outcome.signal = exc.signum
    if exc.reason == DEADLINE:
        outcome.code = Exit.TIME_LIMIT
        outcome.error = KsiError("the job reached its time limit (minus the teardown margin): "
                                 "the workload was stopped and the cluster deleted",
                                 "request more time (sbatch/srun -t) or shorten the workload",
                                 code=Exit.TIME_LIMIT)
    else:
        outcome.code = 128 + exc.signum
        outcome.error = KsiError(f"interrupted by {exc.reason} (scancel, time limit or Ctrl-C): "
                                 "the cluster was deleted", "nothing to clean up; resubmit "
                                 "the job if it was not meant to stop",
                                 code=outcome.code)  # type: ignore[arg-type]


def merge_teardown(outcome: Outcome, job_id: Optional[str]) -> Optional[str]:
    """Fold teardown problems into the outcome: a run that was fine ends TEARDOWN_INCOMPLETE,
    a failed one keeps its code and its fix names 'ksi gc'. Returns a warning to print when
    the code is the workload's own."""
    if not outcome.problems:
        return None
    gc = f"run 'ksi gc --job {job_id}'" if job_id is not None else "run 'ksi gc'"
    what = "teardown incomplete: " + "; ".join(outcome.problems)
    if outcome.error is not None:  # the same error, its fix extended
        err = outcome.error
        outcome.error = err.restated(fix=f"{err.fix}; {what}: {gc}")
    elif outcome.code == 0:
        outcome.error = KsiError(what, gc, code=Exit.TEARDOWN_INCOMPLETE)
        outcome.code = Exit.TEARDOWN_INCOMPLETE
    else:
        return f"{what}; {gc}"
    return None


def finish(console: Console, runner: Runner, plan: Optional[Plan], outcome: Outcome,
           state: RunState) -> int:
    """Write the report, print the last line, return the exit code."""
    from ksi import report

    warning = merge_teardown(outcome, plan.env.job_id if plan is not None else None)
    if warning:
        console.warn(warning)
    if plan is not None:
        path = report.write(plan, console, runner, outcome, state)
        if path:
            console.info(f"run report: {path}")
    if outcome.error is not None:
        console.failed(outcome.error)
    else:
        console.info(f"done: exit {outcome.code} after {time.monotonic() - state.started:.1f}s")
    return int(outcome.code)
