"""Step `ready`: the nodes are Ready and the default service account exists (pods created
before the controller-manager makes it are rejected: seen with real kind right after
create)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ksi.run.step import Step

if TYPE_CHECKING:
    from ksi.access.kubectl import Kubectl
    from ksi.run.context import RunContext


def _wait(kubectl: Kubectl, timeout: float) -> None:
    kubectl.wait_nodes_ready(timeout)
    kubectl.wait_exists("serviceaccount", "default", "default", timeout)


class Ready(Step):
    name = "ready"

    def run(self, ctx: RunContext) -> None:
        _wait(ctx.kubectl, ctx.the_plan.settings.ready_timeout)

    def describe(self, ctx: RunContext) -> list[list[str]]:
        from ksi.run.dryrun import Recorder

        rec = Recorder()
        _wait(ctx.tools(rec)[2], ctx.the_plan.settings.ready_timeout)
        return rec.argvs
