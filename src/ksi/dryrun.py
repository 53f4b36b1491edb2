"""`ksi run --dry-run`: the plan, the rendered kind config and the commands, changing nothing."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from ksi.plan import kindconfig
from ksi.plan.ports import PortBook, port_in_use
from ksi.runner import quote

if TYPE_CHECKING:
    from ksi.lifecycle import RunOptions
    from ksi.plan.plan import Plan
    from ksi.runner import Runner


def print_plan(plan: Plan, runner: Runner, opts: RunOptions, out=None) -> None:
    from pathlib import Path

    from ksi.access import admin
    from ksi.provision import providers
    from ksi.provision.kind import Kind

    out = out or sys.stdout
    s = plan.settings
    book = PortBook(Path(s.lock_dir))
    lo, hi = s.port_range()
    alo, ahi = s.api_port_range()
    k8s = plan.k8s_port or book.peek_free(lo, hi)
    api = book.peek_free(alo, ahi) or alo
    provider = providers.get(plan.provider, runner)
    liqo_steps: list[list[str]] = []
    if plan.mode == "federated":
        from ksi.federate.run import dry_run

        liqo_steps = dry_run(plan, runner, api)
    kind = Kind(runner, provider, systemd_scope=s.systemd_scope)
    kc = plan.kubeconfig
    w = out.write
    w("KSI dry run: nothing is created, reserved or written.\n")
    w(f"job:          {plan.env.describe()}\n")
    w(f"mode:         {plan.mode}\n")
    w(f"cluster:      {plan.cluster}\n")
    w(f"context:      {plan.context}  (K8S_CLUSTER_NAME)\n")
    w(f"provider:     {provider.name}  (KIND_EXPERIMENTAL_PROVIDER={provider.name})\n")
    w(f"image:        {plan.image or 'kind default'}\n")
    w(f"K8S_PORT:     {k8s}  ({'preset, validated' if plan.k8s_port else 'free now'}; "
      f"reserved host-wide at run time)\n")
    w(f"API server:   https://{plan.api_address}:{api}  (TLS verified)\n")
    w(f"workdir:      {plan.workdir}  -> /app in the node\n")
    w(f"state:        {plan.state_dir}  (0700; kubeconfig 0600)\n")
    w(f"report:       {plan.report_path}\n")
    w(f"logs on fail: {plan.log_dir}\n")
    missing = [b for b in (provider.binary, "kind", "kubectl") if not runner.which(b)]
    if missing:
        w(f"missing:      {', '.join(missing)} not on PATH -- run 'ksi doctor'\n")
    gateway = None
    if liqo_steps:
        role = "head: peers the others, runs the workload" if plan.env.node_id == 0 \
            else "member: its cluster becomes a virtual node of the head's"
        w(f"federation:   node {plan.env.node_id} of {plan.env.num_nodes} at "
          f"{plan.api_address} ({role}); pods {plan.pod_subnet}, services "
          f"{plan.service_subnet}; Liqo gateway NodePort {plan.gateway_nodeport}/udp\n")
        gateway = next((p for p in range(lo, hi + 1)
                        if p not in (k8s, plan.gateway_nodeport) and not port_in_use(p)), None)
    w("kind config:\n")
    cfg = kindconfig.dump(plan.kind_config(k8s, api, gateway))
    w("".join(f"  {line}\n" for line in cfg.splitlines()))
    ctl = ["kubectl", "--kubeconfig", str(kc), "--context", plan.context]
    steps = [
        [provider.binary, "info", "--format", "{{json .}}"],
        kind.create_argv(plan.cluster, plan.kind_config_path, kc, plan.image),
        [*ctl, "wait", "--for=condition=Ready", "nodes", "--all",
         f"--timeout={int(s.ready_timeout)}s"],
        [*ctl, "apply", "-f", "-"],
        [*ctl, "-n", admin.NAMESPACE, "create", "token", admin.ACCOUNT, "--duration=<job>s"],
    ]
    steps += liqo_steps
    if opts.manifests:  # ksi.workload: checked before anything is applied, then watched
        steps.append([*ctl, "get", "--raw", "/apis/<group>/<version>"])
        steps.append([*ctl, "get", "namespaces", "-o", "json"])
    for m in opts.manifests:
        steps.append([*ctl, "apply", "-f", m])
    if opts.manifests:
        steps.append([*ctl, "get", "pods,jobs.batch,…", "-A", "-o", "json"])
        steps.append([*ctl, "logs", "-f", "-n", "<ns>", "<pod>", "-c", "<container>"])
    if plan.workload and (plan.mode != "federated" or plan.env.node_id == 0):
        steps.append(["bash", str(plan.workload)])
    steps.append(kind.argv("delete", "cluster", "--name", plan.cluster, "--kubeconfig", str(kc)))
    w("commands:\n")
    for i, argv in enumerate(steps, 1):
        w(f"  {i}. {quote(argv)}\n")
