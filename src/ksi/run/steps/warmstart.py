"""Step `provision`, warm when it can be: with a valid template of this user for this run's
inputs (ksi.warm) the cluster is a clone of it (seconds), else kind creates it cold
(ksi.run.steps.provision). A template problem (stale, corrupt, too slow to come up) is one
warning line naming it, then the cold create; no template at all (warm=auto) is only noted
in the phase line. `ksi run --cold` (warm=off) never looks. Its undo is Provision's: a clone
carries kind's labels, so the same delete removes it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Optional

from ksi.run.steps.provision import Provision

if TYPE_CHECKING:
    from ksi.run.context import RunContext
    from ksi.warm.template import Inputs, Record, Store

log = logging.getLogger("ksi.warm")


class WarmStart(Provision):
    name = "provision"

    def run(self, ctx: RunContext) -> str:
        from ksi.warm.template import TemplateProblem

        p, s, st = ctx.the_plan, ctx.the_plan.settings, ctx.state
        config = p.kind_config(st.k8s_port, st.api_port or 0, st.gateway_host_port,
                               st.node_mounts)
        st.start = "cold"
        if s.warm == "off":
            return super().run(ctx)
        try:
            _cannot(ctx, config)
        except TemplateProblem as exc:  # a run warm start is not for: no warning
            st.warm_reason = exc.reason
            return super().run(ctx) + f" (cold: {exc.reason})"
        rt = ctx.rt
        rt.before_create()
        ctx.provider.check_daemon()
        rt.node_image()
        st.image = rt.image
        try:
            seconds = self._warm(ctx, config)
        except TemplateProblem as exc:
            st.warm_reason = exc.reason
        else:
            st.start = "warm"
            return f"warm clone of template {st.warm_template[:12]} ({p.provider}), API " \
                   f"after {seconds:.1f}s"
        if s.warm == "build" or _store(ctx).records():  # the user opted in: say why
            ctx.console.warn(f"{st.warm_reason}; creating the cluster cold")
        return super().run(ctx) + f" (cold: {st.warm_reason})"

    def _warm(self, ctx: RunContext, config: dict) -> float:
        """Clone the template (made first with warm=build); the seconds it took."""
        from ksi.errors import KsiError
        from ksi.warm import clone
        from ksi.warm.template import TemplateProblem

        p, s, st = ctx.the_plan, ctx.the_plan.settings, ctx.state
        store, inputs = _lookup(ctx, config)
        try:
            rec = clone.check(ctx.provider, store, inputs)
        except TemplateProblem:
            if s.warm != "build":
                raise
            rec = _build(ctx, store, inputs)
        st.warm_template = rec.key
        st.created = True
        try:
            seconds = clone.start(ctx.provider, ctx.kind, rec, cluster=p.cluster,
                                  config=config, api_address=p.api_address,
                                  api_port=st.api_port or 0, kubeconfig=p.kubeconfig,
                                  timeout=s.warm_timeout)
        except (TemplateProblem, KsiError) as exc:
            problems = super().undo(ctx)       # the clone goes; the cold create follows
            if problems:
                raise
            reason = exc.reason if isinstance(exc, TemplateProblem) else \
                f"warm clone failed: {exc.cause}"
            raise TemplateProblem(reason) from exc
        ctx.rt.after_create(p.cluster)   # --preload archives; node containers' cgroups
        return seconds


def _cannot(ctx: RunContext, config: dict) -> None:
    """TemplateProblem when this run is not one warm start is for (before anything runs)."""
    from ksi.warm.template import TemplateProblem, unsupported

    p = ctx.the_plan
    why: Optional[str] = unsupported(config, ctx.provider.name, p.mode)
    if why is None and p.settings.runtime_mode == "job":
        why = "warm start needs runtime_mode=user (a job-scoped runtime's storage ends with " \
              "the job)"
    if why is not None:
        raise TemplateProblem(why)


def _lookup(ctx: RunContext, config: dict) -> tuple[Store, Inputs]:
    """This user's store and this run's template inputs."""
    from ksi.errors import KsiError
    from ksi.warm.build import inputs_for
    from ksi.warm.template import TemplateProblem, node_config

    store = _store(ctx)
    try:
        inputs = inputs_for(ctx.provider, ctx.state.image, node_config(config), store)
    except KsiError as exc:
        raise TemplateProblem(exc.cause) from exc
    return store, inputs


def _store(ctx: RunContext) -> Store:
    """This user's template store (warm_dir)."""
    import os
    from pathlib import Path

    from ksi.warm.template import Store, default_warm_dir

    s = ctx.the_plan.settings
    return Store(Path(s.warm_dir) if s.warm_dir else default_warm_dir(os.environ))


def _build(ctx: RunContext, store: Store, inputs: Inputs) -> Record:
    """warm=build and no usable template: make it now (its failure: a cold create)."""
    from ksi.errors import KsiError
    from ksi.warm.build import build
    from ksi.warm.template import TemplateProblem

    ctx.console.info("warm=build: making this user's warm template first (once)")
    try:
        return build(ctx.provider, ctx.kind, store, inputs, dict(inputs.node_config),
                     timeout=ctx.the_plan.settings.create_timeout)
    except KsiError as exc:
        raise TemplateProblem(f"warm template build failed: {exc.cause}") from exc
