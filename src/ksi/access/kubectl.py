"""kubectl bound to one cluster's private kubeconfig and context."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ksi.errors import CommandFailed, Exit, KsiError

if TYPE_CHECKING:
    from ksi.runner import Result, Runner


class Kubectl:
    def __init__(self, runner: Runner, kubeconfig: Path, context: str,
                 binary: str = "kubectl") -> None:
        self.runner = runner
        self.kubeconfig = kubeconfig
        self.context = context
        self.binary = binary

    def argv(self, *args: str) -> list[str]:
        return [self.binary, "--kubeconfig", str(self.kubeconfig), "--context", self.context,
                *args]

    def run(self, *args: str, input: str | None = None, timeout: float = 120,  # noqa: A002
            check: bool = True, what: str = "", fix: str = "",
            code: Exit = Exit.ACCESS_FAILED) -> Result:
        return self.runner.run(self.argv(*args), input=input, timeout=timeout, check=check,
                               what=what or f"kubectl {args[0]}", fix=fix, code=code,
                               env={"KUBECONFIG": str(self.kubeconfig)})

    def wait_nodes_ready(self, timeout: float, selector: str = "") -> None:
        """Wait until every node (or those matching selector) is Ready; nodes that have not
        registered yet make kubectl say 'no matching resources found': poll until then."""
        deadline = time.monotonic() + timeout
        which = ["-l", selector] if selector else ["--all"]
        last = ""
        while True:
            left = max(1, int(deadline - time.monotonic()))
            res = self.run("wait", "--for=condition=Ready", "nodes", *which,
                           f"--timeout={left}s", timeout=left + 30, check=False)
            if res.returncode == 0:
                return
            last = (res.stderr or res.stdout).strip().splitlines()[-1:] or [""]
            last = last[0]
            if time.monotonic() >= deadline:
                break
            time.sleep(0.25)  # a Liqo virtual node registers 1-5 s after `liqoctl peer`
        raise KsiError(f"cluster nodes not Ready within {timeout:.0f}s ({last})",
                       "the node may be short of CPU/memory or inotify watches: see the "
                       "exported logs and 'ksi doctor'; raise ready_timeout if the node is slow",
                       code=Exit.CLUSTER_NOT_READY)


    def ready_node_labels(self, selector: str, label: str) -> tuple[set[str], str]:
        """The values of label on the Ready nodes matching selector (one `kubectl get`),
        and kubectl's last error line ('' when it answered)."""
        res = self.run("get", "nodes", "-l", selector, "-o", "json", timeout=60, check=False)
        if res.returncode != 0:
            return set(), ((res.stderr or res.stdout).strip().splitlines() or [""])[-1]
        ready = set()
        for node in json.loads(res.stdout or "{}").get("items") or []:
            conditions = (node.get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
                ready.add(((node.get("metadata") or {}).get("labels") or {}).get(label, ""))
        return ready - {""}, ""

    def wait_exists(self, kind: str, name: str, namespace: str, timeout: float) -> None:
        """Poll until the object exists (the cluster is usable, not only Ready)."""
        deadline = time.monotonic() + timeout
        while True:
            res = self.run("-n", namespace, "get", kind, name, "-o", "name", timeout=60,
                           check=False)
            if res.returncode == 0:
                return
            if time.monotonic() >= deadline:
                raise KsiError(f"{kind} {namespace}/{name} not created within {timeout:.0f}s "
                               f"({(res.stderr or res.stdout).strip()[-200:]})",
                               "the controller-manager may be failing: see the exported logs",
                               code=Exit.CLUSTER_NOT_READY)
            time.sleep(0.2)


def api_server(kubeconfig: Path, context: str) -> str:
    """The https URL of the context's cluster, read from the kubeconfig file itself."""
    import yaml

    try:
        data = yaml.safe_load(kubeconfig.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise KsiError(f"cannot read the cluster's kubeconfig {kubeconfig}: {exc}",
                       "report this; the cluster was created but its kubeconfig is unusable",
                       code=Exit.ACCESS_FAILED) from exc
    contexts = {c.get("name"): c.get("context", {}) for c in data.get("contexts") or []}
    clusters = {c.get("name"): c.get("cluster", {}) for c in data.get("clusters") or []}
    ctx = contexts.get(context)
    if not ctx:
        raise KsiError(f"context {context} missing from {kubeconfig}",
                       "report this; kind did not write the expected context",
                       code=Exit.ACCESS_FAILED)
    cluster = clusters.get(ctx.get("cluster"), {})
    if cluster.get("insecure-skip-tls-verify"):
        raise KsiError("the kubeconfig disables TLS verification",
                       "remove insecure-skip-tls-verify; KSI keeps TLS verified",
                       code=Exit.ACCESS_FAILED)
    server = cluster.get("server", "")
    if not server.startswith("https://"):
        raise KsiError(f"API server URL {server!r} is not https", "report this",
                       code=Exit.ACCESS_FAILED)
    return server


__all__ = ["CommandFailed", "Kubectl", "api_server"]
