"""`ksi run` as the normal user inside the VM, for real: rootless nerdctl (KSI's default, kind's
nerdctl provider, containerd >= 1.7) and rootless podman each create a real kind cluster on
cgroup v2, run a small workload (the four variables, a pod writing into /app, a NodePort on
K8S_PORT answering from the VM outside the runtime, the token accepted by the API with TLS
verified), and tear it down leaving nothing: no containers, volumes, state or port locks,
and no rootlesskit process beyond the user's standing daemon."""

from __future__ import annotations

import json
import os
import shlex

import pytest
from tests.e2e.workloads import API_CHECKS, WEB

pytestmark = [pytest.mark.vm, pytest.mark.timeout(3600)]

NODE_IMAGE = "localhost/ksi-kind-node:v1.34.4"
# off by default: under TCG a bypass4netns node reaches systemd's multi-user target after
# kind's fixed 30 s node wait (README, VM row); KSI_VM_BYPASS4NETNS=auto runs it anyway
BYPASS4NETNS = os.environ.get("KSI_VM_BYPASS4NETNS", "off")
# kubeadm's wait for the control plane is raised to 20 minutes: under TCG the control
# plane's Go code runs several times slower and its crypto tens of times slower (kind v0.33
# renders kubeadm v1beta3 below Kubernetes 1.36: timeoutForControlPlane, default 4m)
KIND_CONFIG = """kubeadmConfigPatches:
- |
  kind: ClusterConfiguration
  apiServer:
    timeoutForControlPlane: 20m0s
"""


WORKLOAD = r"""set -euo pipefail
echo "workload: $K8S_CLUSTER_NAME on $(kubectl get nodes --no-headers | wc -l) node(s)"
""" + API_CHECKS + (
    r"""kubectl --context "$K8S_CLUSTER_NAME" wait --for=condition=Ready pod/web --timeout=900s
for i in $(seq 300); do
  curl --fail -sS "http://127.0.0.1:$K8S_PORT/from-pod.txt" > via-host.txt && break
  sleep 1
done
echo "workload: the pod said $(cat via-host.txt)"
""")

# The user's runtime objects of one kind cluster, and KSI's own leftovers.
LEFTOVERS = r"""
c=$1; p=$2
echo "containers: $($p ps -a -q --filter label=io.x-k8s.kind.cluster=$c | xargs)"
echo "volumes: $($p volume ls -q | grep -F "$c" | xargs)"
echo "networks: $($p network ls --format '{{.Name}}' | grep -F "$c" | xargs)"
echo "state: $(ls -A "$XDG_RUNTIME_DIR/ksi" 2>/dev/null | xargs)"
echo "locks: $(ls -A /tmp/ksi-locks 2>/dev/null | grep -F "$c" | xargs)"
echo "rootlesskit: $(pgrep -u "$USER" -c rootlesskit || true)"
"""


def rootlesskit_count(vm) -> str:
    return vm.must("pgrep -u \"$USER\" -c rootlesskit || true").strip()


def ksi_run(vm, provider: str, work: str) -> tuple[int, str, dict]:
    """`ksi run wl.sh` as ksi in `work`; (exit code, output, the run report)."""
    files = {"wl.sh": WORKLOAD, "web.yaml": WEB, "kind.yaml": KIND_CONFIG}
    setup = f"rm -rf {work} && mkdir -p {work} && cd {work} && " + " && ".join(
        f"printf %s {shlex.quote(text)} > {name}" for name, text in files.items())
    vm.must(setup)
    # The user's own PATH (Debian's, without /usr/sbin: KSI adds it for the runtime, whose
    # CNI bridge plugin needs ip6tables) and bypass4netns as configured (auto: bypass4netnsd
    # runs, so nerdctl 1.7's nodes get KSI's shim with the label); KSI_VM_BYPASS4NETNS=off
    # runs without it.
    env = ("PYTHONPATH=/ksi/src PYTHONDONTWRITEBYTECODE=1 "
           f"KSI_PROVIDER={provider} "
           f"KSI_IMAGE={NODE_IMAGE} KSI_CREATE_TIMEOUT=1800 KSI_READY_TIMEOUT=1200 "
           f"KSI_CREATE_RETRIES=0 KSI_BYPASS4NETNS={BYPASS4NETNS}")
    r = vm.run(f"cd {work} && {env} python3 -m ksi run --kind-config kind.yaml wl.sh 2>&1",
               timeout=3000)
    report = vm.run(f"cat {work}/ksi-report-*.json")
    return r.rc, r.out, json.loads(report.out) if report.rc == 0 else {}


@pytest.mark.parametrize("provider", ["nerdctl", "podman"])
def test_ksi_run_real_kind_rootless(vm, provider: str) -> None:
    work = f"/home/ksi/run-{provider}"
    assert "/usr/sbin" not in vm.must("echo $PATH").split(":")   # the case KSI must handle
    before = rootlesskit_count(vm)
    rc, out, report = ksi_run(vm, provider, work)
    phases = {p["phase"]: p.get("seconds") for p in report.get("phases", [])}
    print(f"\nVM ksi run {provider}: exit {rc}, phases {phases}, "
          f"total {report.get('total_seconds')}s")
    assert rc == 0, out[-6000:]
    if provider == "nerdctl" and BYPASS4NETNS != "off":   # 1.7.7 reads the label, not 2.x's
        assert report["runtime"]["bypass4netns"]["used"] is True, report["runtime"]
        assert report["runtime"]["bypass4netns"]["flag"] == "--label", report["runtime"]
    assert "workload: the pod said from-pod" in out, out[-3000:]
    v = dict(x.split("=", 1) for x in vm.must(f"cat {work}/vars.txt").split())
    assert v["NAME"].startswith("kind-ksi-") and v["API"].startswith("https://127.0.0.1:")
    assert 30000 <= int(v["PORT"]) <= 32767 and int(v["TOKENLEN"]) > 100
    api = json.loads(vm.must(f"cat {work}/api.json"))
    assert api["metadata"]["name"] == "kube-system"
    assert vm.must(f"cat {work}/badtoken.txt").strip() == "401"
    assert vm.must(f"cat {work}/from-pod.txt").strip() == "from-pod"   # written through /app
    cluster = v["NAME"].removeprefix("kind-")
    left = dict(ln.split(":", 1) for ln in
                vm.must(f"bash -s {cluster} {provider}", input=LEFTOVERS).splitlines())
    left = {k: v.strip() for k, v in left.items()}
    assert left == {"containers": "", "volumes": "", "networks": "", "state": "", "locks": "",
                    "rootlesskit": before}, left
