"""Step `preflight`: the tools are there (ksi doctor's cheap checks), the runtime mode is
possible, leftovers of ended runs are collected (gc_on_start), enough job time is left; the
deadline alarm is set (its undo clears it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ksi.errors import Exit, KsiError
from ksi.run.step import Step

if TYPE_CHECKING:
    from ksi.run.context import RunContext
    from ksi.runner import Runner


def _checks(runner: Runner, provider: str) -> None:
    from ksi.checks import preflight

    preflight(runner, provider)


class Preflight(Step):
    name = "preflight"

    def run(self, ctx: RunContext) -> Optional[str]:
        p, st = ctx.the_plan, ctx.state
        _checks(ctx.runner, ctx.provider.name)
        ctx.rt.preflight()  # runtime_mode=job: refuse unless the task cgroup is delegated
        detail = None
        if p.settings.gc_on_start:
            from ksi.state.cleanup import quick_pass

            detail = quick_pass(p, ctx.runner)
        st.time_left = p.env.time_left(ctx.runner)
        if st.time_left is not None:
            deadline = st.time_left - p.settings.teardown_margin
            if deadline <= 0:
                raise KsiError(
                    f"only {st.time_left:.0f}s left in the job, less than the teardown "
                    f"margin ({p.settings.teardown_margin}s)",
                    "request more time (sbatch/srun -t)", code=Exit.TIME_LIMIT)
            assert ctx.guard is not None
            ctx.guard.set_deadline(deadline)
        return detail

    def undo(self, ctx: RunContext) -> list[str]:
        if ctx.guard is not None:
            ctx.guard.set_deadline(None)
        return []

    def describe(self, ctx: RunContext) -> list[list[str]]:
        from ksi.run.dryrun import Recorder

        rec = Recorder()
        try:
            _checks(rec, ctx.provider.name)
        except KsiError:
            pass  # the dry run shows what is missing in its header
        ctx.state.time_left = ctx.the_plan.env.time_left(rec)
        return rec.argvs
