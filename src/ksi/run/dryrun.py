"""`ksi run --dry-run`: the plan, the rendered kind config and the commands of the very steps
a run executes (each step's describe()), changing nothing."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from ksi.errors import KsiError
from ksi.runner import Result, Runner, quote

if TYPE_CHECKING:
    from ksi.run.context import RunContext
    from ksi.run.step import Step


def _answer(argv: list[str]) -> str:
    return "{}" if any("json" in a for a in argv) else ""


@dataclass
class Recorder(Runner):
    """A runner that runs nothing: it records each command and answers it as a tool that
    succeeded would (answer(argv) gives the output; the default: '{}' for JSON, else '')."""

    answer: Callable[[list[str]], str] = field(default=_answer)
    argvs: list[list[str]] = field(default_factory=list)

    def run(self, argv: Sequence[str], **_kw: Any) -> Result:  # type: ignore[override]
        argv = [str(a) for a in argv]
        self.argvs.append(argv)
        return Result(argv, 0, self.answer(argv), "", 0.0)

    def spawn(self, argv: Sequence[str], **_kw: Any) -> Any:  # type: ignore[override]
        raise AssertionError("a dry run starts no process")


def commands(ctx: RunContext, steps: Sequence[Step]) -> list[tuple[list[str], bool]]:
    """(argv, in the background) of the steps that apply, then of their undo, in the order
    the run executes them."""
    run: list[tuple[list[str], bool]] = []
    undo: list[list[str]] = []
    for step in steps:
        if not step.applies(ctx):
            continue
        run += [(argv, step.background) for argv in step.describe(ctx)]
        undo = step.describe_undo(ctx) + undo
    return run + [(argv, False) for argv in undo]


def print_plan(ctx: RunContext, steps: Sequence[Step], out: Optional[Any] = None) -> int:
    """Print the plan and the commands; 0, or a setting's error code (nothing printed)."""
    try:
        cmds = commands(ctx, steps)   # the steps record their decisions (placement, ports)
        text = _header(ctx, cmds)
    except KsiError as exc:  # e.g. a setting only the federation reads
        ctx.console.failed(exc)
        return int(exc.code)
    (out or sys.stdout).write(text)
    return 0


def _header(ctx: RunContext, cmds: list[tuple[list[str], bool]]) -> str:
    from ksi.plan import kindconfig

    plan, st = ctx.the_plan, ctx.state
    provider = ctx.provider
    lines = [
        "KSI dry run: nothing is created, reserved or written.",
        f"job:          {plan.env.describe()}",
        f"mode:         {plan.mode}",
        f"cluster:      {plan.cluster}",
        f"context:      {plan.context}  (K8S_CLUSTER_NAME)",
        f"provider:     {provider.name}  (KIND_EXPERIMENTAL_PROVIDER={provider.name})",
        f"image:        {plan.image or 'kind default'}",
        f"K8S_PORT:     {st.k8s_port}  ({'preset, validated' if plan.k8s_port else 'free now'}; "
        f"reserved host-wide at run time)",
        f"API server:   https://{plan.api_address}:{st.api_port}  (TLS verified)",
        f"workdir:      {plan.workdir}  -> /app in the node",
        f"state:        {plan.state_dir}  (0700; kubeconfig 0600)",
        f"report:       {plan.report_path}",
        f"logs on fail: {plan.log_dir}",
    ]
    if st.gpus is not None:  # step gpus: the GPUs passed by UUID and those that are not
        from ksi.gpu import mode_of
        from ksi.gpu.describe import dry_run_lines

        lines += dry_run_lines(st.gpus, mode_of(plan.settings))
    missing = [b for b in (provider.binary, "kind", "kubectl") if not ctx.runner.which(b)]
    if missing:
        lines.append(f"missing:      {', '.join(missing)} not on PATH -- run 'ksi doctor'")
    if plan.mode == "federated":
        env = plan.env
        role = "head: peers the others, runs the workload" if env.node_id == 0 \
            else "member: its cluster becomes a virtual node of the head's"
        lines.append(f"federation:   node {env.node_id} of {env.num_nodes} at "
                     f"{plan.api_address} ({role}); pods {plan.pod_subnet}, services "
                     f"{plan.service_subnet}; Liqo gateway NodePort "
                     f"{plan.gateway_nodeport}/udp")
    lines.append("kind config:")
    cfg = kindconfig.dump(plan.kind_config(st.k8s_port, st.api_port or 0,
                                           st.gateway_host_port, st.node_mounts))
    lines += [f"  {line}" for line in cfg.splitlines()]
    lines.append("commands:")
    lines += [f"  {i}. {quote(argv)}" + ("  &" if bg else "")
              for i, (argv, bg) in enumerate(cmds, 1)]
    return "".join(f"{ln}\n" for ln in lines)
