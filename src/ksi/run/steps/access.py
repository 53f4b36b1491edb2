"""Step `access`: the admin-user service account and its token for the job's time left; the
API server's URL from the cluster's own kubeconfig."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ksi.run.step import Step

if TYPE_CHECKING:
    from ksi.access.kubectl import Kubectl
    from ksi.run.context import RunContext


def _token(kubectl: Kubectl, ctx: RunContext) -> str:
    from ksi.access import admin

    s, st = ctx.the_plan.settings, ctx.state
    st.token_seconds = admin.token_seconds(st.time_left, s.token_duration, s.token_margin)
    admin.ensure_admin(kubectl)
    return admin.create_token(kubectl, st.token_seconds)


class Access(Step):
    name = "access"

    def run(self, ctx: RunContext) -> str:
        from ksi.access.kubectl import api_server

        p, st = ctx.the_plan, ctx.state
        st.token = _token(ctx.kubectl, ctx)
        st.api_url = api_server(p.kubeconfig, p.context)
        return f"API {st.api_url}, token valid {st.token_seconds}s"

    def describe(self, ctx: RunContext) -> list[list[str]]:
        from ksi.run.dryrun import Recorder

        rec = Recorder(answer=lambda argv: "dry-run-token" if "token" in argv else "")
        _token(ctx.tools(rec)[2], ctx)
        return rec.argvs
