"""Step `job`: who and where this run is (Slurm or local), and the settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ksi.run.step import Step

if TYPE_CHECKING:
    from ksi.run.context import RunContext


class Job(Step):
    name = "job"
    guarded = False

    def run(self, ctx: RunContext) -> str:
        from ksi import jobenv, settings

        ctx.settings = settings.load(ctx.opts.flags)
        ctx.env = jobenv.detect()
        return ctx.env.describe()
