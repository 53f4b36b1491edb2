"""`srun -N3 ksi run WORKLOAD SHARED_DIR` with REAL kind clusters joined by REAL Liqo v1.0.1,
on the Slurm test bed: each test-bed node (its own network namespace) runs its own real kind
cluster under root podman; the head peers with the two members; the workload offloads a
namespace and runs one pod on each member's cluster, which writes into the shared working
directory through hostPath /app; then the multinode example runs in the same federation.

Everything is built here from Go modules (tests/e2e/build/build-cache.sh, steps liqo and
liqoimages). Liqo runs without its networking module: this kernel has neither WireGuard nor
Geneve, so pods on different nodes cannot talk to each other; the control plane (peering,
virtual nodes, offloading) is real. Skips with check-cache.sh's words when the cache is
incomplete or we are not root.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "tests" / "e2e" / "build"
CACHE = Path(os.environ.get("KSI_E2E_CACHE", "/var/cache/ksi-e2e"))
IMAGE = os.environ.get("KSI_E2E_NODE_IMAGE", "localhost/ksi-kind-node:v1.34.4")
BUSYBOX = CACHE / "example-images" / "docker.io_library_busybox_1.36.tar"


def _cache_missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (root podman)"
    res = subprocess.run([str(BUILD / "check-cache.sh"), "--liqo"], capture_output=True,
                         text=True, env={**os.environ, "KSI_E2E_CACHE": str(CACHE)})
    if res.returncode != 0:
        return " ".join(res.stdout.split())
    if not BUSYBOX.is_file():
        return f"{BUSYBOX} missing (build-cache.sh exampleimages)"
    return None


MISSING = _cache_missing()
pytestmark = [pytest.mark.realkind, pytest.mark.slurm,
              pytest.mark.skipif(MISSING is not None, reason=f"real kind + Liqo: {MISSING}")]

WORKLOAD = r"""set -euo pipefail
echo "nodes=$KSI_NODE_COUNT virtual=$KSI_VIRTUAL_NODES" > fed.txt
kubectl --context "$K8S_CLUSTER_NAME" get nodes -l liqo.io/type=virtual-node -L slurm-host \
  --no-headers > virtual.txt
liqoctl info -o json --kubeconfig "$KUBECONFIG" > info.json
ns=offload-e2e
kubectl --context "$K8S_CLUSTER_NAME" create namespace $ns
kubectl --context "$K8S_CLUSTER_NAME" label namespace $ns liqo.io/scheduling-enabled=true
liqoctl offload namespace $ns --kubeconfig "$KUBECONFIG" \
  --namespace-mapping-strategy EnforceSameName --pod-offloading-strategy Remote
for id in ${KSI_VIRTUAL_NODES//,/ }; do
kubectl --context "$K8S_CLUSTER_NAME" -n $ns create -f - <<YAML
apiVersion: v1
kind: Pod
metadata: {name: on-$id}
spec:
  restartPolicy: Never
  nodeSelector: {liqo.io/remote-cluster-id: $id}
  containers:
  - name: c
    image: docker.io/library/busybox:1.36
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo \$(hostname) > /app/from-$id.txt"]
    volumeMounts: [{name: app, mountPath: /app}]
  volumes: [{name: app, hostPath: {path: /app, type: Directory}}]
YAML
done
for id in ${KSI_VIRTUAL_NODES//,/ }; do
  kubectl --context "$K8S_CLUSTER_NAME" -n $ns wait --for=jsonpath='{.status.phase}'=Succeeded \
    pod/on-$id --timeout=300s
done
kubectl --context "$K8S_CLUSTER_NAME" -n $ns get pods -o \
  jsonpath='{range .items[*]}{.metadata.name} {.spec.nodeName} {.status.podIP}{"\n"}{end}' \
  > pods.txt
"""


def real_env(base: Path) -> dict[str, str]:
    from tests.slurm.harness import DEFAULT_PATH

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "KSI_", "K8S_", "KIND_")) and k != "KUBECONFIG"}
    env.update({
        "PATH": os.pathsep.join([str(CACHE / "bin"), str(CACHE / "k8s-bin"),
                                 str(CACHE / "liqo-bin"), os.path.dirname(sys.executable),
                                 DEFAULT_PATH]),
        "PYTHONPATH": str(ROOT / "src"), "PY": sys.executable,
        "CONTAINERS_CONF": str(BUILD / "containers.conf"),
        "KSI_PROVIDER": "podman", "KSI_IMAGE": IMAGE,
        "KSI_STATE_DIR": str(base / "state"), "KSI_LOCK_DIR": str(base / "locks"),
        "KSI_SITE_CONFIG": "/nonexistent", "KSI_USER_CONFIG": "/nonexistent",
        "KSI_GC_ON_START": "false",
        # offline Liqo, as a site without registry access configures it
        "KSI_LIQO_CHART": str(CACHE / "liqo-chart"), "KSI_LIQO_VERSION": "v1.0.1",
        "KSI_IMAGE_ARCHIVE_DIR": str(CACHE / "liqo-images"),
        "KSI_LIQO_NETWORKING": "false", "KSI_LIQO_SET": "metricAgent.enabled=false",
        "KSI_PRELOAD": str(BUSYBOX),
    })
    return env


def podman_names(*args: str) -> list[str]:
    out = subprocess.run(["podman", *args], capture_output=True, text=True,
                         env={**os.environ, "CONTAINERS_CONF": str(BUILD / "containers.conf")})
    return [x for x in out.stdout.split() if x]


@pytest.fixture(scope="module")
def federation(slurm_testbed) -> tuple[subprocess.CompletedProcess, Path, Path]:
    """ONE real 3-node federation (its bring-up and teardown are most of the time) for both
    tests: the workload runs the checks above, then execs examples/multinode/
    workload-offload.sh unchanged, with the environment KSI gives it, as a user's
    `srun -N3 ksi run workload-offload.sh SHARED_DIR` would."""
    base = slurm_testbed.shared_dir("realliqo")
    work = base / "work"
    work.mkdir()
    (base / "shared").mkdir()
    (work / "checks.sh").write_text(WORKLOAD)
    example = ROOT / "examples" / "multinode" / "workload-offload.sh"
    (work / "wl.sh").write_text(f'set -e\nbash ./checks.sh\nexec bash {example}\n')
    run = work / "run.sh"
    run.write_text('#!/bin/bash\nexec "$PY" -m ksi run "$@"\n')
    run.chmod(0o755)
    argv, env = slurm_testbed.command(
        ["srun", "--nodes=3", "--ntasks-per-node=1", "--label", str(run), "wl.sh",
         str(base / "shared")], env=real_env(base))
    res = subprocess.run(argv, env=env, cwd=str(work), capture_output=True, text=True,
                         timeout=1200)
    return res, base, work


@pytest.mark.timeout(1500)  # the shared federation's bring-up counts in the first
def test_three_real_clusters_become_one(federation) -> None:
    res, base, work = federation
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    fed = (work / "fed.txt").read_text().split()
    assert fed[0] == "nodes=3", fed
    members = fed[1].removeprefix("virtual=").split(",")
    assert len(members) == 2
    # two virtual nodes, Ready, carrying the member's Slurm host as a label (-L slurm-host)
    virtual = sorted((c[0], c[1], c[-1]) for c in
                     (ln.split() for ln in (work / "virtual.txt").read_text().splitlines()))
    assert virtual == [(members[0], "Ready", "node2"), (members[1], "Ready", "node3")], virtual
    info = json.loads((work / "info.json").read_text())
    peers = {p["clusterID"]: p for p in info["peerings"]["peers"]}
    assert set(peers) == set(members)
    assert {p["authenticationStatus"] for p in peers.values()} == {"Healthy"}
    assert {p["networkingStatus"] for p in peers.values()} == {"Disabled"}
    # each pod ran on a virtual node, i.e. in that member's cluster (its pod subnet), and wrote
    # into the shared working directory through that member node's /app
    pods = {ln.split()[0]: ln.split()[1:] for ln in (work / "pods.txt").read_text().splitlines()}
    subnet = {members[0]: "10.100.16.", members[1]: "10.100.32."}
    for m in members:
        node, ip = pods[f"on-{m}"]
        assert node == m and ip.startswith(subnet[m]), pods
        assert (work / f"from-{m}.txt").read_text().strip() == f"on-{m}"
    # the head peered with both members at once (the default peer_concurrency, 8, >= 2)
    assert "2 virtual node(s) Ready and Healthy (concurrency 8)" in out
    # nothing left: containers, volumes, state, rendezvous directory
    clusters = [ln.split()[-1] for ln in out.splitlines() if "phase plan: ok" in ln]
    assert len(clusters) == 3
    for c in clusters:
        assert podman_names("ps", "-a", "-q", "--filter",
                            f"label=io.x-k8s.kind.cluster={c}") == []
        assert podman_names("volume", "ls", "-q", "--filter",
                            f"label={c}-control-plane=true") == []
    assert list((base / "state").iterdir()) == []
    assert not (base / "shared" / ".ksi").exists() or \
        list((base / "shared" / ".ksi").iterdir()) == []
    for i in range(3):
        rep = json.loads(next(work.glob(f"ksi-report-*-{i}.json")).read_text())
        print(f"node {i}: " + ", ".join(f"{p['phase']} {p['seconds']:.1f}s"
                                        for p in rep["phases"]))


@pytest.mark.timeout(1500)
def test_the_multinode_example_on_real_liqo(federation) -> None:
    """examples/multinode/workload-offload.sh as a user runs it: a Job spread over the head's
    node and the two virtual nodes; its pods' logs are read back through Liqo."""
    res, _base, _work = federation
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    head = [ln.split(": ", 1)[1] for ln in out.splitlines() if ln.startswith("0: ")]
    assert any(ln.startswith("nodes of this job: 3; virtual nodes: ") for ln in head), out
    said = [ln for ln in head if ln.startswith("pod ") and ln.endswith(" says hello")]
    assert len(said) == 6, out[-4000:]   # 2 x 3 nodes, every pod's log read back
    where = [ln for ln in head if ln.startswith("spread-")]
    nodes = {ln.split()[6] for ln in where}   # `kubectl get pods -o wide`: NODE column
    assert len(nodes) >= 2, where              # the head's own node and virtual node(s)
