"""Warm start on REAL kind (root podman, the cache of tests/e2e/build): `ksi warm` makes a
template once; two `ksi run` at once start from clones of it and neither accepts the other's
token or client certificate (401); a cancelled and a SIGKILLed warm run leave nothing (the
latter after `ksi gc`); a corrupted template is reported in one line and bypassed (cold),
and `ksi gc` removes it; a failed build leaves no half template. Kept few: they run in CI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.e2e.test_realkind_ksi import BUILD, MISSING, podman_leftovers, real_env, wait_for

pytestmark = [pytest.mark.realkind, pytest.mark.timeout(900),
              pytest.mark.skipif(MISSING is not None, reason=f"real kind cache: {MISSING}")]

WORKLOAD = r"""set -euo pipefail
ctx="$K8S_CLUSTER_NAME"
kubectl config view --raw --minify --context "$ctx" \
  -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d > ca.crt
kubectl config view --raw --minify --context "$ctx" \
  -o jsonpath='{.users[0].user.client-certificate-data}' | base64 -d > client.crt
kubectl config view --raw --minify --context "$ctx" \
  -o jsonpath='{.users[0].user.client-key-data}' | base64 -d > client.key
printf '%s' "$K8S_CLUSTER_API" > api
printf '%s' "$K8S_CLUSTER_API_TOKEN" > token
printf '%s' "$KSI_CLUSTER" > cluster
kubectl --context "$ctx" get nodes -o name > nodes
kubectl --context "$ctx" run hello --image=localhost/ksi-busybox:e2e --restart=Never \
  --image-pull-policy=Never -- /bin/busybox sh -c "echo hello-from-$ctx"
for i in $(seq 600); do
  out=$(kubectl --context "$ctx" logs hello 2>/dev/null || true)
  [ -n "$out" ] && break
  sleep 0.1
done
printf '%s\n' "$out" > pod.out
touch ready
for i in $(seq 1200); do [ -e release ] && exit 0; sleep 0.1; done
exit 9
"""


def code_with(work: Path, creds: Path) -> str:
    """The HTTP status work's API server gives creds' token and, separately, its client
    certificate (TLS verified against work's own CA)."""
    base = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert",
            str(work / "ca.crt")]
    url = (work / "api").read_text() + "/api/v1/namespaces/default/pods"
    token = subprocess.run([*base, "-H", f"Authorization: Bearer {(creds / 'token').read_text()}",
                            url], capture_output=True, text=True, timeout=30).stdout
    cert = subprocess.run([*base, "--cert", str(creds / "client.crt"), "--key",
                           str(creds / "client.key"), url], capture_output=True, text=True,
                          timeout=30).stdout
    return f"{token},{cert}"


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """A template made with `ksi warm` (its own warm_dir, so its own key); removed after."""
    base = tmp_path_factory.mktemp("warm")
    env = {**real_env(base), "KSI_WARM_DIR": str(base / "warm")}
    res = subprocess.run([sys.executable, "-m", "ksi", "warm"], env=env, capture_output=True,
                         text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "warm template" in res.stdout and "made in" in res.stdout, res.stdout
    yield base, env
    res = subprocess.run([sys.executable, "-m", "ksi", "warm", "--rm"], env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert warm_objects(base / "warm") == {"images": [], "volumes": []}


def podman(*args: str) -> list[str]:
    out = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "CONTAINERS_CONF": str(BUILD / "containers.conf")})
    return [x for x in out.stdout.split() if x]


def warm_objects(warm_dir: Path) -> dict[str, list[str]]:
    """This store's template images and volumes (by the key in their label)."""
    keys = {p.stem for p in warm_dir.glob("*.json")}
    images = podman("images", "--filter", "label=io.ksi.warm", "--format",
                    "{{.Repository}}:{{.Tag}}")
    volumes = podman("volume", "ls", "-q", "--filter", "label=io.ksi.warm")
    mine = [k[:12] for k in keys]
    return {"images": [i for i in images if any(k in i for k in mine)],
            "volumes": [v for v in volumes if any(k in v for k in mine)]}


def start(base: Path, env: dict, name: str) -> tuple[Path, subprocess.Popen]:
    work = base / name
    work.mkdir()
    (work / "wl.sh").write_text(WORKLOAD)
    proc = subprocess.Popen([sys.executable, "-m", "ksi", "run", "wl.sh"], cwd=work, env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    return work, proc


def finish(work: Path, proc: subprocess.Popen) -> tuple[str, dict]:
    (work / "release").touch()
    _out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-3000:]
    return err, json.loads(next(work.glob("ksi-report-*.json")).read_text())


def test_two_concurrent_clones_each_their_own_cluster_and_credentials(warm) -> None:
    base, env = warm
    (a, pa), (b, pb) = start(base, env, "a"), start(base, env, "b")
    try:
        wait_for((a / "ready").exists, 300, pa)
        wait_for((b / "ready").exists, 300, pb)
        assert code_with(a, a) == "200,200" and code_with(b, b) == "200,200"
        assert code_with(b, a) == "401,401", "clone b accepted clone a's token or cert"
        assert code_with(a, b) == "401,401", "clone a accepted clone b's token or cert"
        assert (a / "ca.crt").read_bytes() != (b / "ca.crt").read_bytes()
        clusters = subprocess.run(["kind", "get", "clusters"], env=env, capture_output=True,
                                  text=True, timeout=60).stdout.split()
        err_a, rep_a = finish(a, pa)
        err_b, rep_b = finish(b, pb)
    finally:
        for p in (pa, pb):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                p.communicate(timeout=180)
    for work, rep, err in ((a, rep_a, err_a), (b, rep_b, err_b)):
        assert rep["start"]["how"] == "warm", err[-2000:]
        assert "warning" not in err, err
        cluster = rep["cluster"]
        assert cluster in clusters
        assert (work / "pod.out").read_text().strip() == f"hello-from-kind-{cluster}"
        assert len((work / "nodes").read_text().split()) == 1
        assert podman_leftovers(cluster) == {"containers": [], "volumes": []}
        provision = next(p for p in rep["phases"] if p["phase"] == "provision")
        print(f"warm clone {cluster}: provision {provision['seconds']}s, "
              f"total {rep['total_seconds']}s")
    assert list((base / "state").iterdir()) == []


def test_a_cancelled_and_a_sigkilled_warm_run_leave_nothing(warm) -> None:
    base, env = warm
    work, proc = start(base, env, "term")
    wait_for((work / "ready").exists, 300, proc)
    os.killpg(proc.pid, signal.SIGTERM)            # as scancel: the whole step
    _out, err = proc.communicate(timeout=180)
    assert proc.returncode == 143, err[-2000:]
    rep = json.loads(next(work.glob("ksi-report-*.json")).read_text())
    assert rep["start"]["how"] == "warm"
    assert podman_leftovers(rep["cluster"]) == {"containers": [], "volumes": []}

    work, proc = start(base, env, "kill")
    wait_for((work / "ready").exists, 300, proc)
    cluster = (work / "cluster").read_text()
    os.killpg(proc.pid, signal.SIGKILL)            # no teardown at all: `ksi gc` cleans up
    proc.wait(timeout=60)
    (work / "release").touch()      # the workload (its own session) outlives ksi: end it
    proc.communicate(timeout=60)
    assert podman_leftovers(cluster)["containers"], "the SIGKILLed run's node is gone already"
    res = subprocess.run([sys.executable, "-m", "ksi", "gc"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert podman_leftovers(cluster) == {"containers": [], "volumes": []}
    assert list((base / "state").iterdir()) == []
    assert warm_objects(base / "warm")["images"], "gc removed the valid template"


def test_a_corrupted_template_is_one_warning_a_cold_run_and_gone_after_gc(warm) -> None:
    base, env = warm
    rec = json.loads(next((base / "warm").glob("*.json")).read_text())
    mount = podman("volume", "inspect", "--format", "{{.Mountpoint}}", rec["volume"])[0]
    Path(mount, "lib", "ksi-corruption").write_text("not from the template")
    work, proc = start(base, env, "corrupt")
    wait_for((work / "ready").exists, 400, proc)
    err, rep = finish(work, proc)
    warnings = [ln for ln in err.splitlines() if "warning:" in ln]
    assert len(warnings) == 1 and "changed since it was made" in warnings[0], err[-2000:]
    assert rep["start"]["how"] == "cold" and "corrupt" in rep["start"]["cold_because"]
    res = subprocess.run([sys.executable, "-m", "ksi", "gc"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0 and "removed template" in res.stdout, res.stdout + res.stderr
    assert warm_objects(base / "warm") == {"images": [], "volumes": []}
    assert not list((base / "warm").glob("*.json"))


def test_a_failed_build_leaves_no_half_template(tmp_path: Path) -> None:
    env = {**real_env(tmp_path), "KSI_WARM_DIR": str(tmp_path / "warm"),
           "KSI_CREATE_TIMEOUT": "4"}     # kind create is stopped after 4 s
    before = {"images": podman("images", "-q", "--filter", "label=io.ksi.warm"),
              "volumes": podman("volume", "ls", "-q", "--filter", "label=io.ksi.warm")}
    res = subprocess.run([sys.executable, "-m", "ksi", "warm"], env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 99, res.stderr
    assert "the warm template could not be made" in res.stderr, res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("ksi: error:"), res.stderr
    assert not list((tmp_path / "warm").glob("*.json"))
    assert not podman("ps", "-a", "-q", "--filter", "name=ksiwarm-")
    after = {"images": podman("images", "-q", "--filter", "label=io.ksi.warm"),
             "volumes": podman("volume", "ls", "-q", "--filter", "label=io.ksi.warm")}
    assert after == before
