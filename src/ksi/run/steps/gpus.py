"""Steps `gpus` and `gpu-setup` (ksi.gpu): the job's GPUs, and only those, in the cluster.

- `gpus` (after preflight, before anything is made): which GPUs this job owns (nvidia-smi in
  the job step, by UUID), the device plugin's archive in the cache; the kind config then
  passes exactly those GPUs by UUID. `--gpus auto|required` given without job GPUs, or GPUs
  expected but unusable: exit 97; the device plugin image missing: exit 98.
- `gpu-setup` (after ready, only with job GPUs): inside the node the NVIDIA runtime for
  containerd and no other GPU's device files, the RuntimeClass `nvidia`, the device plugin
  from the archive cache, until the node advertises the job's GPUs; a failure fails the run
  (98), never a CPU-only cluster. Its undo (teardown, before the cluster is deleted) names a
  GPU lost during the run (an Xid error).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Optional

from ksi.run.step import Step

if TYPE_CHECKING:
    from ksi.gpu.discovery import Discovery
    from ksi.gpu.node import GpuSetup as Setup
    from ksi.run.context import RunContext
    from ksi.runner import Runner


def mode(ctx: RunContext) -> str:
    """auto | none | required; `--gpus auto|required` on the command line asks for GPUs:
    without job GPUs the run refuses (exit 97) instead of running CPU-only."""
    from ksi.gpu import mode_of

    flag = str(ctx.opts.flags.get("gpus") or "")
    if flag in ("auto", "required"):
        return "required"
    return mode_of(ctx.the_plan.settings)


def _setup(ctx: RunContext, d: Discovery) -> Setup:
    from ksi.gpu.node import gpu_step

    return gpu_step(d, ctx.the_plan.settings)


def _discover(ctx: RunContext, runner: Runner, *, dry: bool = False) -> Discovery:
    """Discovery, the archive checked (the dry run notes what the run would refuse), the
    facts recorded in the run state."""
    from ksi.errors import KsiError
    from ksi.gpu.discovery import GpuRequest, discover
    from ksi.gpu.node import node_mounts

    req = GpuRequest.from_environ(os.environ)
    if mode(ctx) == "required" and req.in_slurm and not req.expects_gpus():
        from ksi.errors import GpuUnavailable

        asked = ctx.opts.flags.get("gpus")
        raise GpuUnavailable(
            f"{f'--gpus {asked}' if asked else 'gpus = required'} asks for GPUs but this Slurm "
            "job has none (no SLURM_STEP_GPUS/SLURM_JOB_GPUS, no CUDA_VISIBLE_DEVICES)",
            "request GPUs (srun --gpus=N or --gres=gpu:N), or run with --gpus none")
    d = discover(runner, req, mode=mode(ctx))
    setup = _setup(ctx, d)
    try:
        setup.preflight()  # the device plugin's archive: refused before anything is made
    except KsiError as exc:
        if not dry:
            raise
        d.notes.append(f"the run stops here: {exc.line()}")
    ctx.state.gpus = d
    ctx.state.node_mounts = node_mounts(d) if setup.active else []
    return d


class Gpus(Step):
    name = "gpus"

    def run(self, ctx: RunContext) -> Optional[str]:
        d = _discover(ctx, ctx.runner)
        if not d.job:
            return f"none ({d.selected_by})" if d.selected_by else "none"
        return (f"{len(d.job)} of the job's GPU(s) by UUID: {', '.join(d.uuids)}"
                + (f"; {len(d.others)} other(s) not passed" if d.others else ""))

    def describe(self, ctx: RunContext) -> list[list[str]]:
        """Discovery for real (nvidia-smi only reads); its lines go into the dry run's
        header (ksi.gpu.describe.dry_run_lines)."""
        from ksi.gpu.discovery import LIST_ARGV, QUERY_ARGV

        d = _discover(ctx, ctx.runner, dry=True)
        asked = mode(ctx) != "none" and ctx.runner.which("nvidia-smi") is not None
        return [list(QUERY_ARGV), list(LIST_ARGV)] if asked and (d.job or d.others) else []


class GpuSetup(Step):
    name = "gpu-setup"

    def applies(self, ctx: RunContext) -> bool:
        d = ctx.state.gpus
        return d is not None and bool(d.job) and mode(ctx) != "none"

    def run(self, ctx: RunContext) -> str:
        d = ctx.state.gpus
        assert d is not None
        setup = _setup(ctx, d)
        setup.run(ctx, ctx.runner)
        return (f"{len(d.job)} GPU(s) advertised as nvidia.com/gpu (RuntimeClass nvidia, "
                f"device plugin {setup.image})")

    def undo(self, ctx: RunContext) -> list[str]:
        """Nothing to remove (teardown deletes the cluster); a GPU lost during the run is
        named here, while the cluster still exists."""
        from ksi.errors import KsiError
        from ksi.gpu import health

        d, outcome = ctx.state.gpus, ctx.outcome
        if d is None or not d.job or (outcome is not None and outcome.signal is not None):
            return []
        try:
            found = health.check(d, ctx.kubectl, ctx.runner)
        except KsiError as exc:  # a look only: never a teardown problem
            ctx.console.warn(f"could not check the GPUs after the run: {exc.cause}")
            return []
        if found.lost:
            ctx.state.gpus_lost = found.gone or [f"{found.unhealthy} unhealthy"]
            ctx.console.warn(found.line())
        return []

    def describe(self, ctx: RunContext) -> list[list[str]]:
        from ksi.provision.delete import node_names

        d, p, st = ctx.state.gpus, ctx.the_plan, ctx.state
        assert d is not None
        nodes = p.kind_config(st.k8s_port, st.api_port or 0).get("nodes") or [{}]
        argvs = _setup(ctx, d).argvs(p.cluster, ctx.provider.binary,
                                     node_names(p.cluster, nodes))
        kubectl = ctx.kubectl
        return [kubectl.argv(*a[1:]) if a[0] == "kubectl" else a for a in argvs]
