"""A run is a list of steps (modelled on kind's pkg/cluster/internal/create/actions).

Each step has a `name` (its phase line in the job log; '' for none), `run` (returns the
phase's detail text), `undo` (removes what its run made; returns the problems it could not
fix) and `describe` (the commands its run executes, for --dry-run). `execute` runs the steps
in order; whatever happens, it then undoes the steps that ran, in reverse order, in the
`teardown` phase, and merges what is left into the exit code (ksi.run.outcome)."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Optional, Sequence

from ksi.errors import Interrupted, KsiError
from ksi.run import outcome as outcomes
from ksi.run.outcome import Outcome

if TYPE_CHECKING:
    from ksi.run.context import RunContext

log = logging.getLogger("ksi")


class EndRun(Exception):
    """Raised by an unguarded step: this process has nothing to do; the run ends at once
    with code (no teardown, no report)."""

    def __init__(self, code: int = 0) -> None:
        super().__init__(code)
        self.code = code


class Step:
    """One step of a run; subclasses override what they need."""

    name: str = ""
    guarded: bool = True      # runs under the signal guard (job and plan do not: nothing to undo)
    late: bool = False        # undo after the report is written, outside the teardown phase
    background: bool = False  # its commands run alongside the next steps (dry run: '&')

    def applies(self, ctx: RunContext) -> bool:
        """Whether this run has the step (e.g. federation steps: only federated runs)."""
        return True

    def run(self, ctx: RunContext) -> Optional[str]:
        """Do the step; returns the detail of its phase line."""
        return None

    def undo(self, ctx: RunContext) -> list[str]:
        """Remove what run made (also after a partial run); the problems left."""
        return []

    def describe(self, ctx: RunContext) -> list[list[str]]:
        """The commands run executes (decisions without side effects, such as placement,
        are recorded in ctx as a run would)."""
        return []

    def describe_undo(self, ctx: RunContext) -> list[list[str]]:
        """The commands undo executes after a run that went well."""
        return []

    def failed(self, ctx: RunContext, outcome: Outcome) -> None:
        """The run failed (before teardown): tell whoever must know at once."""

    def interrupted(self, signum: int) -> Optional[KsiError]:
        """The error a signal during this step becomes (None: the usual interruption)."""
        return None

    @property
    def undoes(self) -> bool:
        return type(self).undo is not Step.undo and not self.late


def _run_one(ctx: RunContext, step: Step) -> None:
    if not step.name:
        step.run(ctx)
        return
    with ctx.console.phase(step.name) as ph:
        detail = step.run(ctx)
        if detail:
            ph["detail"] = detail


def execute(ctx: RunContext, steps: Sequence[Step]) -> int:
    """Run the steps (or, with --dry-run, describe them), always undo those that ran, write
    the report; the exit code."""
    from ksi.signals import Guard

    outcome = ctx.outcome = Outcome()
    ran: list[Step] = []
    with contextlib.ExitStack() as stack:
        try:
            for step in steps:
                if step.guarded and ctx.guard is None:
                    if ctx.opts.dry_run:
                        from ksi.run.dryrun import print_plan

                        return print_plan(ctx, [s for s in steps[steps.index(step):]])
                    p = ctx.the_plan
                    ctx.guard = stack.enter_context(Guard(
                        grace=p.settings.workload_grace, relay_notices=not p.env.is_slurm))
                if not step.applies(ctx):
                    continue
                ran.append(step)
                _run_one(ctx, step)
        except EndRun as end:
            return end.code
        except KsiError as exc:
            outcome.step = ran[-1].name if ran else ""
            outcomes.failure(outcome, exc)
        except (Interrupted, KeyboardInterrupt) as exc:
            sig = exc if isinstance(exc, Interrupted) else Interrupted(2, "SIGINT")
            outcome.step = ran[-1].name if ran else ""
            err = ran[-1].interrupted(sig.signum) if ran else None
            if err is not None:
                outcomes.failure(outcome, err)
            else:
                outcomes.interrupted(outcome, sig)
        finally:
            if ctx.guard is not None:
                _teardown(ctx, ran, outcome)
    code = outcomes.finish(ctx.console, ctx.runner, ctx.plan, outcome, ctx.state)
    for step in reversed(ran):
        if step.late:
            step.undo(ctx)
    return code


def _teardown(ctx: RunContext, ran: list[Step], outcome: Outcome) -> None:
    guard = ctx.guard
    assert guard is not None
    guard.mode = "teardown"
    guard.set_deadline(None)
    if outcome.failed:
        for step in reversed(ran):
            step.failed(ctx, outcome)
    stopped = ctx.runner.stop_all()  # a helper thread's liqoctl must not outlive the run
    if stopped:
        log.info("stopped %d command(s) still running in the background", stopped)
    undo = [s for s in reversed(ran) if s.undoes]
    if not undo:
        return
    if guard.received is not None and not outcome.failed:
        # the signal reached the workload first (Slurm signals every process of the step)
        # and ended it: the run was still cancelled
        outcomes.interrupted(outcome, Interrupted(guard.received, guard.reason))
    ctx.state.problems = []
    with ctx.console.phase("teardown") as ph:
        for step in undo:
            try:
                ctx.state.problems += step.undo(ctx)
            except KsiError as exc:
                ctx.state.problems.append(exc.cause)
        outcome.problems = list(ctx.state.problems)
        if outcome.problems:
            ph["status"] = "incomplete"
            ph["detail"] = "; ".join(outcome.problems)
    if ctx.has_tools:  # runtime mode, images, network, cgroups
        ctx.state.runtime = ctx.rt.report()
