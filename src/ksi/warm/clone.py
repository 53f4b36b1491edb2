"""One run's clone of a template: checked first (record, image, /var digest), then its own
/var copied from the template's, its node started as kind would start it (the run's name,
cluster label, port mappings and /app), the fresh identity made inside it, kind's kubeconfig
exported, and the API server answering. Anything wrong is a TemplateProblem: the run falls
back to a cold create."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ksi.errors import KsiError
from ksi.provision.providers import noderun
from ksi.warm.build import tree_digest
from ksi.warm.template import Inputs, Record, Store, TemplateProblem

if TYPE_CHECKING:
    from ksi.provision.kind import Kind
    from ksi.provision.providers import Provider

log = logging.getLogger("ksi.warm")


def check(provider: Provider, store: Store, inputs: Inputs) -> Record:
    """The usable record for inputs; TemplateProblem naming what is wrong."""
    rec = store.read(inputs)
    names = rec.names
    got = noderun.image_id(provider, names.image)
    if got is None:
        raise TemplateProblem(f"warm template image {names.image} is missing (run 'ksi warm')")
    if got != rec.template_image_id:
        raise TemplateProblem(f"warm template image {names.image} was replaced since it was "
                              "made (run 'ksi warm')")
    var = noderun.volume_mountpoint(provider, rec.volume)
    if var is None:
        raise TemplateProblem(f"warm template volume {rec.volume} is missing (run 'ksi warm')")
    if tree_digest(provider, var, provider.info().rootless) != rec.var_digest:
        raise TemplateProblem(f"warm template volume {rec.volume} changed since it was made "
                              "(corrupt; run 'ksi warm' to remake it)")
    return rec


def start(provider: Provider, kind: Kind, rec: Record, *, cluster: str,
          config: Mapping[str, Any], api_address: str, api_port: int, kubeconfig: Path,
          timeout: float, clock: Callable[[], float] = time.monotonic,
          pause: Callable[[float], None] = time.sleep) -> float:
    """Start the clone; the seconds until its API server answered. The caller deletes the
    cluster (its node and volume carry kind's labels) after a failure."""
    t0 = clock()
    info = provider.info()
    node_name = f"{cluster}-control-plane"
    nodes = config.get("nodes") or [{}]
    var = noderun.volume_create(provider, "", {node_name: "true"})   # as kind labels it
    src, dst = (noderun.volume_mountpoint(provider, rec.volume),
                noderun.volume_mountpoint(provider, var))
    if not src or not dst:
        raise TemplateProblem("the template's or the clone's /var volume vanished")
    noderun.copy_volume(provider, src, dst, info.rootless, timeout)
    copied = clock()
    argv = noderun.run_argv(provider, name=node_name, hostname=rec.names.node, cluster=cluster,
                            image=rec.names.image, volume=var, node=nodes[0],
                            api_address=api_address, api_port=api_port,
                            rootless=info.rootless, devmapper=info.devmapper)
    provider.runner.run(argv, env=provider.env, timeout=120, what=f"{provider.binary} run "
                        "(warm clone)", code=noderun.WHAT)
    started = clock()
    deadline = t0 + timeout
    _poll(lambda: _export(kind, cluster, kubeconfig), deadline, clock, pause,
          "the clone's admin kubeconfig")
    os.chmod(kubeconfig, 0o600)
    identity = clock()
    _poll(lambda: _answers(provider, kubeconfig, cluster), deadline, clock, pause,
          "the clone's API server")
    _new_ca_for_pods(provider, kubeconfig, cluster, node_name)
    log.info("warm clone: /var copied in %.1fs, node started in %.1fs, fresh identity after "
             "%.1fs, API server answered after %.1fs", copied - t0, started - copied,
             identity - started, clock() - t0)
    return clock() - t0


def _poll(ok: Callable[[], bool], deadline: float, clock: Callable[[], float],
          pause: Callable[[float], None], what: str) -> None:
    while not ok():
        if clock() >= deadline:
            raise TemplateProblem(f"warm clone too slow: {what} did not answer within "
                                  "warm_timeout")
        pause(0.2)


def _export(kind: Kind, cluster: str, kubeconfig: Path) -> bool:
    """kind export kubeconfig: fails until the clone entrypoint moved admin.conf in."""
    res = kind.runner.run(kind.argv("export", "kubeconfig", "--name", cluster, "--kubeconfig",
                                    str(kubeconfig)), env=kind.env(kubeconfig), timeout=30,
                          check=False)
    return res.returncode == 0


def _answers(provider: Provider, kubeconfig: Path, cluster: str) -> bool:
    from ksi.access.kubectl import Kubectl

    k = Kubectl(provider.runner, kubeconfig, f"kind-{cluster}")
    try:
        k.run("get", "--raw", "/livez", timeout=10)   # readyz waits for RBAC reconciling
    except KsiError:
        return False
    return True


def _new_ca_for_pods(provider: Provider, kubeconfig: Path, cluster: str, node: str) -> None:
    """The template's pods (kube-proxy, CoreDNS, the CNI) were made with the template's CA
    in their service-account volume (the kube-root-ca.crt ConfigMaps): publish the clone's
    CA in every namespace and delete those pods, so that their controllers make them again
    with it (static pods are the node's own and keep running)."""
    import json

    from ksi.access.kubectl import Kubectl

    ca = noderun.exec_in(provider, node, ["cat", "/etc/kubernetes/pki/ca.crt"],
                         "read the clone's CA")
    k = Kubectl(provider.runner, kubeconfig, f"kind-{cluster}")
    namespaces = k.run("get", "namespaces", "-o", "name").stdout.split()
    docs = [{"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "kube-root-ca.crt", "namespace": ns.split("/", 1)[1]},
             "data": {"ca.crt": ca}} for ns in namespaces]
    k.run("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                  "items": docs}))
    pods = json.loads(k.run("get", "pods", "-A", "-o", "json").stdout).get("items") or []
    for pod in pods:
        meta = pod.get("metadata") or {}
        if "kubernetes.io/config.mirror" not in (meta.get("annotations") or {}):
            k.run("delete", "pod", "-n", meta.get("namespace", ""), meta.get("name", ""),
                  "--wait=false")
