"""Step `plan`: the workload, the shared directory, the mode, names, preset ports and paths
(ksi.plan.plan.make_plan); nothing is changed yet."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ksi.run.step import Step

if TYPE_CHECKING:
    from ksi.run.context import RunContext


def mode_of(ctx: RunContext) -> str:
    """single | each | federated (Liqo on one node too with federate=always)."""
    env, cfg, opts = ctx.env, ctx.settings, ctx.opts
    assert env is not None and cfg is not None
    if ctx.shell:
        return "single"
    if env.num_nodes > 1:
        return "each" if opts.each else "federated"
    if cfg.federate == "always" and not opts.each:
        return "federated"   # the same workload for 1..N nodes
    return "single"


class Plan(Step):
    name = "plan"
    guarded = False

    def run(self, ctx: RunContext) -> str:
        from ksi.plan.plan import check_shared_dir, make_plan
        from ksi.workload.script import check_workload

        opts = ctx.opts
        assert ctx.env is not None and ctx.settings is not None
        workload = check_workload(opts.workload) if opts.workload else None
        shared = check_shared_dir(opts.shared_dir)
        ctx.plan = make_plan(ctx.env, ctx.settings, workload=workload, shared_dir=shared,
                             environ=dict(os.environ), mode=mode_of(ctx))
        return f"cluster {ctx.plan.cluster}"
