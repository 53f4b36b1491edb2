"""Step `workload`: the manifests (applied, then waited for) and the workload script, with
the cluster's variables; its exit status becomes the run's. A signal that reached the
workload still ends the run as interrupted."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ksi.errors import Interrupted
from ksi.run.step import Step

if TYPE_CHECKING:
    from ksi.run.context import RunContext


class Workload(Step):
    name = "workload"

    def run(self, ctx: RunContext) -> str:
        assert ctx.guard is not None and ctx.outcome is not None
        code = ctx.outcome.code = self.start(ctx)
        self.ended(ctx, code)
        if ctx.guard.received is not None:
            raise Interrupted(ctx.guard.received, ctx.guard.reason)
        return f"exit {code}"

    def start(self, ctx: RunContext) -> int:
        """Run the workload; its exit status."""
        p, opts, guard = ctx.the_plan, ctx.opts, ctx.guard
        assert guard is not None
        code = 0
        if opts.manifests:
            from ksi.workload.manifests import run_manifests

            code = run_manifests(ctx, guard, [Path(m) for m in opts.manifests])  # type: ignore[arg-type]
        if p.workload is not None and code == 0:
            from ksi.workload.script import run_script

            code = run_script(ctx.runner, guard, p.workload, workdir=p.workdir,
                              variables=ctx.variables())
        return code

    def ended(self, ctx: RunContext, code: int) -> None:
        """After the workload (a multi-node head tells the members here)."""

    def describe(self, ctx: RunContext) -> list[list[str]]:
        p = ctx.the_plan
        kubectl = ctx.kubectl
        out: list[list[str]] = []
        if ctx.opts.manifests:  # ksi.workload: checked before anything is applied
            out.append(kubectl.argv("get", "--raw", "/apis/<group>/<version>"))
            out.append(kubectl.argv("get", "namespaces", "-o", "json"))
        out += [kubectl.argv("apply", "-f", m) for m in ctx.opts.manifests]
        if ctx.opts.manifests:  # then watched, each container's log followed
            out.append(kubectl.argv("get", "pods,jobs.batch,…", "-A", "-o", "json"))
            out.append(kubectl.argv("logs", "-f", "-n", "<ns>", "<pod>", "-c", "<container>"))
        if p.workload is not None:
            out.append(["bash", str(p.workload)])
        return out

