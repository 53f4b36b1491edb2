"""`ksi run --provider podman` on a REAL kind cluster: the kind binary and node image built
here from Go modules and Debian packages (tests/e2e/build/build-cache.sh), root podman.

Runs when the cache is complete (tests/e2e/build/check-cache.sh) and we are root; skips with
check-cache's words otherwise. Proves: the variables, the working directory at /app inside a
pod, a NodePort on K8S_PORT answering from the host and from a Slurm test-bed node, the token
accepted by the API (curl, TLS verified) and a wrong one refused, nothing left after
teardown, and a scancelled Slurm job whose real cluster is deleted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.e2e.workloads import API_CHECKS, WEB

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "tests" / "e2e" / "build"
CACHE = Path(os.environ.get("KSI_E2E_CACHE", "/var/cache/ksi-e2e"))
IMAGE = os.environ.get("KSI_E2E_NODE_IMAGE", "localhost/ksi-kind-node:v1.34.4")
TESTBED_HOST_IP = "10.79.0.1"  # the test bed's bridge address (tests/slurm/testbed)


def _cache_missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (root podman)"
    res = subprocess.run([str(BUILD / "check-cache.sh")], capture_output=True, text=True,
                         env={**os.environ, "KSI_E2E_CACHE": str(CACHE)})
    if res.returncode != 0:
        return " ".join(res.stdout.split())
    return None


MISSING = _cache_missing()
pytestmark = [pytest.mark.realkind,
              pytest.mark.skipif(MISSING is not None, reason=f"real kind cache: {MISSING}")]


WORKLOAD = r"""set -euo pipefail
""" + API_CHECKS + (
    r"""kubectl --context "$K8S_CLUSTER_NAME" wait --for=condition=Ready pod/web --timeout=180s
for i in $(seq 100); do
  curl --fail -sS "http://127.0.0.1:$K8S_PORT/from-pod.txt" > via-host.txt && break
  sleep 0.2
done
touch serving
for i in $(seq 1200); do [ -e release ] && exit 0; sleep 0.1; done
exit 9
""")


def real_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "KSI_", "K8S_", "KIND_")) and k != "KUBECONFIG"}
    env.update({
        "PATH": os.pathsep.join([str(CACHE / "bin"), str(CACHE / "k8s-bin"),
                                 os.path.dirname(sys.executable),
                                 "/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"]),
        "PYTHONPATH": str(ROOT / "src"),
        "CONTAINERS_CONF": str(BUILD / "containers.conf"),
        "KSI_PROVIDER": "podman", "KSI_IMAGE": IMAGE,
        "KSI_STATE_DIR": str(tmp / "state"), "KSI_LOCK_DIR": str(tmp / "locks"),
        "KSI_SITE_CONFIG": "/nonexistent", "KSI_USER_CONFIG": "/nonexistent",
        "KSI_GC_ON_START": "false",
    })
    return env


def podman_leftovers(cluster: str) -> dict[str, list[str]]:
    def names(*args: str) -> list[str]:
        out = subprocess.run(["podman", *args], capture_output=True, text=True,
                             env={**os.environ, "CONTAINERS_CONF": str(BUILD / "containers.conf")})
        return [x for x in out.stdout.split() if x]
    return {
        "containers": names("ps", "-a", "-q", "--filter", f"label=io.x-k8s.kind.cluster={cluster}"),
        "volumes": names("volume", "ls", "-q", "--filter",
                         f"label={cluster}-control-plane=true"),
    }


def wait_for(pred, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"ksi ended early ({proc.returncode}): "
                                 f"{proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_real_kind_run_end_to_end(tmp_path: Path, slurm_testbed) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "wl.sh").write_text(WORKLOAD)
    (work / "web.yaml").write_text(WEB)
    proc = subprocess.Popen([sys.executable, "-m", "ksi", "run", "wl.sh"], cwd=work,
                            env=real_env(tmp_path), text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        wait_for((work / "serving").exists, 400, proc)
        port = dict(x.split("=", 1) for x in (work / "vars.txt").read_text().split())["PORT"]
        # the NodePort answers from a Slurm test-bed node (another network namespace)
        res = slurm_testbed.srun(["curl", "--fail", "-sS",
                                  f"http://{TESTBED_HOST_IP}:{port}/from-pod.txt"],
                                 extra_args=["-w", "node1"], timeout=60)
        assert res.stdout.strip() == "from-pod", res.stderr
        (work / "release").touch()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    v = dict(x.split("=", 1) for x in (work / "vars.txt").read_text().split())
    assert v["NAME"].startswith("kind-ksi-local-") and v["API"].startswith("https://127.0.0.1:")
    assert 30000 <= int(v["PORT"]) <= 32767 and int(v["TOKENLEN"]) > 100
    assert json.loads((work / "api.json").read_text())["metadata"]["name"] == "kube-system"
    assert (work / "badtoken.txt").read_text().strip() == "401"
    assert (work / "via-host.txt").read_text().strip() == "from-pod"
    assert (work / "from-pod.txt").read_text().strip() == "from-pod"  # written through /app
    cluster = v["NAME"].removeprefix("kind-")
    assert podman_leftovers(cluster) == {"containers": [], "volumes": []}
    assert list((tmp_path / "state").iterdir()) == []
    rep = json.loads(next(work.glob("ksi-report-*.json")).read_text())
    teardown = next(p for p in rep["phases"] if p["phase"] == "teardown")
    print(f"real kind: provision {rep['phases'][4]['seconds']}s, teardown "
          f"{teardown['seconds']}s, total {rep['total_seconds']}s")


def test_scancelled_job_deletes_its_real_cluster(slurm_testbed) -> None:
    from tests.slurm.harness import DEFAULT_PATH

    work = slurm_testbed.shared_dir("realkind")
    (work / "wl.sh").write_text('echo "$K8S_CLUSTER_NAME" > name\ntouch started\n'
                                "while true; do sleep 0.1; done\n")
    env = real_env(work)
    env["PATH"] = env["PATH"].replace("/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
                                      DEFAULT_PATH)
    job = slurm_testbed.sbatch(f"#!/bin/bash\nsrun {sys.executable} -m ksi run wl.sh\n",
                               cwd=work, env=env, extra_args=["-w", "node1"])
    try:
        wait_for((work / "started").exists, 400)
    finally:
        slurm_testbed.scancel(job)
    assert slurm_testbed.wait_gone(job, timeout=120) == "CANCELLED"
    out = next(work.glob("slurm-*.out")).read_text()
    assert "phase teardown: ok" in out, out
    cluster = (work / "name").read_text().strip().removeprefix("kind-")
    assert podman_leftovers(cluster) == {"containers": [], "volumes": []}


FLAKY_JOB = """apiVersion: batch/v1
kind: Job
metadata: {name: flaky}
spec:
  backoffLimit: 3
  template:
    spec:
      restartPolicy: OnFailure
      containers:
      - name: work
        image: localhost/ksi-busybox:e2e
        imagePullPolicy: Never
        command: ["/bin/busybox", "sh", "-c", "if [ -e /app/tried ]; then \\
          for i in $(seq 1200); do [ -e /app/go ] && break; sleep 0.25; done; \\
          echo second-try-ok; else touch /app/tried; echo first-try-fails; exit 3; fi"]
        volumeMounts: [{name: app, mountPath: /app}]
      volumes:
      - name: app
        hostPath: {path: /app, type: Directory}
"""

FAILING_JOB = """apiVersion: batch/v1
kind: Job
metadata: {name: doomed}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: work
        image: localhost/ksi-busybox:e2e
        imagePullPolicy: Never
        command: ["/bin/busybox", "sh", "-c", "echo giving-up; exit 5"]
"""


def test_real_kind_manifest_run_retries_as_kubernetes_does(tmp_path: Path) -> None:
    """`ksi run job.yaml` on real kind: a crash that Kubernetes retries (OnFailure) is not
    fatal, both attempts' output streams live with the container's prefix; a Job past its
    backoffLimit exits 92 naming the Job, pod, container and exit code."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "flaky.yaml").write_text(FLAKY_JOB)
    # the second try waits for /app/go, made once KSI has shown the first try: the kubelet
    # removes an ended container once a newer one has ended too, so without this order the
    # first try's output may be gone before any poll (it crashes at once, and so would the
    # restart, which Kubernetes makes at once the first time)
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with out.open("w") as fo, err.open("w") as fe:
        proc = subprocess.Popen([sys.executable, "-m", "ksi", "run", "flaky.yaml"], cwd=work,
                                env=real_env(tmp_path), stdout=fo, stderr=fe, text=True)
    try:
        wait_for(lambda: "first-try-fails" in out.read_text(), 400, proc)
        (work / "go").touch()
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=120)
    res = subprocess.CompletedProcess(proc.args, proc.returncode, out.read_text(),
                                      err.read_text())
    assert res.returncode == 0, res.stderr[-3000:]
    lines = res.stdout.splitlines()
    first = [i for i, ln in enumerate(lines) if ln.endswith("first-try-fails")]
    second = [i for i, ln in enumerate(lines) if ln.endswith("second-try-ok")]
    assert len(first) == 1 and len(second) == 1 and first[0] < second[0], res.stdout
    assert lines[second[0]].startswith("[default/flaky-"), res.stdout
    assert "/work] " in lines[second[0]], res.stdout

    (work / "doomed.yaml").write_text(FAILING_JOB)
    res = subprocess.run([sys.executable, "-m", "ksi", "run", "doomed.yaml"], cwd=work,
                         env=real_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert res.returncode == 92, res.stderr[-3000:]
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("ksi: error: job default/doomed failed"), last
    assert "container work" in last and "exit 5" in last, last
    assert "giving-up" in res.stdout
    assert list((tmp_path / "state").iterdir()) == []
