"""Step `reserve`: the private state directory, host-wide port reservations (K8S_PORT, the
API server's, the Liqo gateway's), the run record and the kind config on disk. Its undo
releases the ports and removes the state (kept, with the record, when the cluster could not
be deleted: 'ksi gc' then finds it)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from ksi.run.step import Step

if TYPE_CHECKING:
    from ksi.run.context import RunContext


class Reserve(Step):
    name = "reserve"

    def run(self, ctx: RunContext) -> str:
        from ksi.plan import kindconfig
        from ksi.plan.paths import ensure_private_dir, write_private
        from ksi.plan.ports import PortBook
        from ksi.state import record

        p, s, st = ctx.the_plan, ctx.the_plan.settings, ctx.state
        ensure_private_dir(p.state_root)
        ensure_private_dir(p.state_dir)
        st.state_made = True
        book = PortBook(Path(s.lock_dir), {"cluster": p.cluster, "job": p.env.job_id,
                                             "user": p.env.user})
        lo, hi = s.port_range()
        if p.k8s_port is not None:
            r = book.reserve(p.k8s_port, "K8S_PORT")
        else:
            r = book.reserve_any(lo, hi, "K8S_PORT", exclude=[p.gateway_nodeport or 0])
        st.reservations.append(r)
        st.k8s_port = r.port
        if p.gateway_nodeport is not None:
            g = book.reserve_any(lo, hi, "Liqo gateway port",
                                 exclude=[st.k8s_port, p.gateway_nodeport])
            st.reservations.append(g)
            st.gateway_host_port = g.port
        alo, ahi = s.api_port_range()
        a = book.reserve_any(alo, ahi, "API server port")
        st.reservations.append(a)
        st.api_port = a.port
        record.write(p.state_dir, record.build(p, k8s_port=st.k8s_port, api_port=st.api_port,
                                               gateway_host_port=st.gateway_host_port),
                     s.registry_dir)
        config = p.kind_config(st.k8s_port, st.api_port, st.gateway_host_port,
                               st.node_mounts)
        write_private(p.kind_config_path, kindconfig.dump(config))
        return f"K8S_PORT={st.k8s_port} api={p.api_address}:{st.api_port} state={p.state_dir}"

    def undo(self, ctx: RunContext) -> list[str]:
        p, st = ctx.the_plan, ctx.state
        for r in st.reservations:
            r.release()
        st.reservations.clear()
        if ctx.state.problems:  # the cluster is left: keep its record for 'ksi gc'
            return []
        if p.settings.registry_dir:
            from ksi.state.registry import unregister

            unregister(p.settings.registry_dir, p.cluster)
        if st.state_made:
            shutil.rmtree(p.state_dir, ignore_errors=True)
            st.state_made = p.state_dir.exists()
            if st.state_made:
                return [f"could not remove {p.state_dir}"]
        return []

    def describe(self, ctx: RunContext) -> list[list[str]]:
        """No commands; the ports free now (the run reserves its own)."""
        from ksi.plan.ports import PortBook, port_in_use

        p, s, st = ctx.the_plan, ctx.the_plan.settings, ctx.state
        book = PortBook(Path(s.lock_dir))
        lo, hi = s.port_range()
        alo, ahi = s.api_port_range()
        st.k8s_port = p.k8s_port or book.peek_free(lo, hi)
        st.api_port = book.peek_free(alo, ahi) or alo
        if p.gateway_nodeport is not None:
            st.gateway_host_port = next(
                (x for x in range(lo, hi + 1)
                 if x not in (st.k8s_port, p.gateway_nodeport) and not port_in_use(x)), None)
        return []
