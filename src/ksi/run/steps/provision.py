"""Step `provision`: the runtime set up (job-scoped runtime, bypass4netns), the runtime
answers, the node image, `kind create cluster` (retried), images preloaded. Its undo deletes
the cluster (ksi.provision.delete, logs exported first after a failure) and stops the
job-scoped runtime."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ksi.run.step import Step

if TYPE_CHECKING:
    from ksi.run.context import RunContext


def _node_names(ctx: RunContext) -> list[str]:
    """The node names of the kind config on disk (the plan's, when it is not written)."""
    import yaml

    from ksi.provision.delete import node_names

    p = ctx.the_plan
    try:
        nodes = yaml.safe_load(p.kind_config_path.read_text()).get("nodes")
    except (OSError, AttributeError, yaml.YAMLError):
        nodes = p.kind_config(ctx.state.k8s_port, ctx.state.api_port or 0).get("nodes")
    return node_names(p.cluster, nodes or [{}])


class Provision(Step):
    name = "provision"

    def run(self, ctx: RunContext) -> str:
        p, s, st = ctx.the_plan, ctx.the_plan.settings, ctx.state
        rt = ctx.rt
        rt.before_create()  # job-scoped runtime, bypass4netns shim (runner.extra_env)
        ctx.provider.check_daemon()
        rt.node_image()
        st.image = rt.image
        st.created = True
        st.create_attempts = ctx.kind.create(
            p.cluster, p.kind_config_path, p.kubeconfig, image=st.image,
            timeout=s.create_timeout, retries=s.create_retries)
        if p.kubeconfig.exists():
            os.chmod(p.kubeconfig, 0o600)
        rt.after_create(p.cluster)  # --preload archives; node containers' cgroups
        return f"kind cluster {p.cluster} ({p.provider})" + (
            f", {st.create_attempts} attempts" if st.create_attempts > 1 else "")

    def undo(self, ctx: RunContext) -> list[str]:
        from ksi.provision.delete import delete_cluster

        p, st = ctx.the_plan, ctx.state
        problems: list[str] = []
        if st.created:
            # logs only after a failure: a cancelled job must finish within KillWait
            problems = delete_cluster(ctx.provider, ctx.kind, p.cluster, p.kubeconfig,
                                      nodes=_node_names(ctx),
                                      logs_to=p.log_dir if ctx.failed else None)
            st.created = bool(problems)
        return problems + ctx.rt.teardown()  # stop the job-scoped runtime (user mode: no-op)

    def describe(self, ctx: RunContext) -> list[list[str]]:
        from ksi.errors import KsiError
        from ksi.run.dryrun import Recorder

        p, s = ctx.the_plan, ctx.the_plan.settings
        names = _node_names(ctx)
        rec = Recorder(answer=lambda argv: _ps_answer(names, p.cluster)
                       if "ps" in argv else "{}" if any("json" in a for a in argv) else "")
        provider, kind, _kubectl, rt = ctx.tools(rec)
        provider.check_daemon()
        if s.image_archive or s.image_archive_dir:
            try:
                rt.node_image()
            except KsiError:
                pass  # the run stops here with the reason; the dry run shows the rest
        kind.create(p.cluster, p.kind_config_path, p.kubeconfig, image=rt.image)
        try:
            rt.after_create(p.cluster)
        except KsiError:
            pass
        return rec.argvs

    def describe_undo(self, ctx: RunContext) -> list[list[str]]:
        from ksi.provision.delete import delete_cluster
        from ksi.run.dryrun import Recorder

        p = ctx.the_plan
        names = _node_names(ctx)

        def answer(argv: list[str]) -> str:
            deleted = any("delete" in a for a in rec.argvs[:-1])  # then nothing is left
            return "" if deleted or "ps" not in argv else _ps_answer(names, p.cluster)

        rec = Recorder(answer=answer)
        provider, kind, _kubectl, _rt = ctx.tools(rec)
        delete_cluster(provider, kind, p.cluster, p.kubeconfig, nodes=names)
        return rec.argvs


def _ps_answer(names: list[str], cluster: str) -> str:
    """What `ps --format json` would print for the planned nodes (one object a line)."""
    import json

    return "".join(json.dumps({"Names": n, "Labels": {"io.x-k8s.kind.cluster": cluster}}) + "\n"
                   for n in names)
