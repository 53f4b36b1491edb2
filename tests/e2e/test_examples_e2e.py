"""The example workloads under examples/, each run with `ksi run` on a real node.

Skipped, with the precise reason, without a real kind, a reachable rootless runtime, kubectl
and cgroup v2 (see conftest.py; KSI_E2E_PROVIDER=podman opts into root podman with the
locally built kind cache). Each test checks the example's outcome, the run report, and that
the cluster is gone afterwards.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

import pytest
import yaml
from tests.e2e.conftest import Stack, e2e_environ, normalize_image

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SCRIPTS = {
    "pod-sysbench": "pod-sysbench.sh",
    "job-pytorch": "job-pytorch.sh",
    "job-yaml": "job-yaml.sh",
    "kube-api": "kube-api.sh",
    "pod-nginx": "pod-nginx.sh",
}


def example_images(name: str) -> list[str]:
    images = []
    for path in sorted((EXAMPLES / name).glob("*.y*ml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            spec = doc.get("spec", {})
            if doc.get("kind") != "Pod":
                spec = spec.get("template", {}).get("spec", {})
            images += [c["image"] for c in spec.get("containers", [])]
    return images


def image_setup(stack: Stack, name: str) -> dict[str, str]:
    """Environment that makes the example's images available, or a skip naming the image.
    On a rootless node the cluster pulls them; in podman mode (offline cache) they must be
    in the node image or in the archive directory (then preloaded with KSI_PRELOAD)."""
    if stack.preloaded is None:
        return {}
    archives: list[str] = []
    for image in example_images(name):
        if normalize_image(image) in stack.preloaded:
            continue
        found: Optional[Path] = None
        if stack.archive_dir is not None:
            try:
                from ksi.images import find_archive

                found = find_archive(stack.archive_dir, image)
            except ImportError:
                found = None
        if found is None:
            where = stack.archive_dir or "KSI_E2E_IMAGE_ARCHIVES"
            pytest.skip(f"image {image} is neither in the node image nor archived in {where} "
                        f"(ksi images save --dir {where} {image})")
        archives.append(str(found))
    return {"KSI_PRELOAD": ",".join(archives)} if archives else {}


def need(*tools: str) -> None:
    for tool in tools:
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not on PATH (the example runs it on the host)")


def run_example(stack: Stack, name: str, workdir: Path, timeout: float = 1500,
                **extra: str) -> subprocess.CompletedProcess:
    env = {**e2e_environ(stack), **image_setup(stack, name), **extra}
    return subprocess.run(["ksi", "run", str(EXAMPLES / name / SCRIPTS[name])], cwd=workdir,
                          env=env, capture_output=True, text=True, timeout=timeout)


def report(workdir: Path) -> dict:
    reports = sorted(workdir.glob("ksi-report-*.json"), key=lambda p: p.stat().st_mtime)
    assert reports, f"no ksi-report-*.json in {workdir}"
    return json.loads(reports[-1].read_text())


def assert_cluster_gone(stack: Stack, rep: dict) -> None:
    env = e2e_environ(stack)
    r = subprocess.run(["kind", "get", "clusters"], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert rep["cluster"] not in r.stdout.split(), f"cluster {rep['cluster']} was left behind"


def assert_ok(stack: Stack, r: subprocess.CompletedProcess, workdir: Path) -> dict:
    assert r.returncode == 0, f"ksi run exited {r.returncode}\n{r.stdout}\n{r.stderr}"
    rep = report(workdir)
    assert rep["exit_code"] == 0, rep
    assert_cluster_gone(stack, rep)
    return rep


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    d = tmp_path / "work"
    d.mkdir()
    return d


@pytest.mark.timeout(1800)
def test_job_yaml(e2e_stack: Stack, workdir: Path) -> None:
    (workdir / "marker-file").write_text("x")
    r = run_example(e2e_stack, "job-yaml", workdir)
    assert_ok(e2e_stack, r, workdir)
    assert "hello world" in r.stdout
    assert "marker-file" in r.stdout, "the pod did not see the working directory at /app"


@pytest.mark.timeout(1800)
def test_pod_sysbench(e2e_stack: Stack, workdir: Path) -> None:
    r = run_example(e2e_stack, "pod-sysbench", workdir)
    assert_ok(e2e_stack, r, workdir)
    assert "events per second" in r.stdout


@pytest.mark.timeout(3600)
def test_job_pytorch(e2e_stack: Stack, workdir: Path) -> None:
    r = run_example(e2e_stack, "job-pytorch", workdir, timeout=3300)
    assert_ok(e2e_stack, r, workdir)
    model = workdir / "out" / "model.pt"
    assert model.is_file() and model.stat().st_size > 0, f"no model in {workdir / 'out'}"
    assert json.loads((workdir / "out" / "metrics.json").read_text())["epochs"] > 0


@pytest.mark.timeout(1200)
def test_kube_api(e2e_stack: Stack, workdir: Path) -> None:
    need("curl", "base64")
    r = run_example(e2e_stack, "kube-api", workdir)
    assert_ok(e2e_stack, r, workdir)
    for ns in ("default", "kube-system"):
        assert f"namespace {ns}" in r.stdout, r.stdout


@pytest.mark.timeout(1800)
def test_pod_nginx_once(e2e_stack: Stack, workdir: Path) -> None:
    need("curl")
    r = run_example(e2e_stack, "pod-nginx", workdir)
    rep = assert_ok(e2e_stack, r, workdir)
    assert "Welcome to nginx" in r.stdout
    assert f":{rep['ports']['k8s']}/" in r.stdout


def free_port(lo: int = 30000, hi: int = 32767) -> int:
    for _ in range(200):
        port = random.randint(lo, hi)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    pytest.skip(f"no free TCP port in {lo}-{hi}")


def fetch(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.read().decode(errors="replace")
    except (urllib.error.URLError, OSError):
        return ""


@pytest.mark.timeout(1800)
def test_pod_nginx_serves_until_cancelled(e2e_stack: Stack, workdir: Path) -> None:
    """KSI_EXAMPLE_SERVE=1: the test reaches nginx on 127.0.0.1:$K8S_PORT while the job
    runs; SIGTERM (what scancel sends) ends it and the cluster is deleted."""
    need("curl")
    port = free_port()
    env = {**e2e_environ(e2e_stack), **image_setup(e2e_stack, "pod-nginx"),
           "K8S_PORT": str(port), "KSI_EXAMPLE_SERVE": "1"}
    log = workdir.parent / "ksi-output.log"
    with log.open("w") as out:
        proc = subprocess.Popen(["ksi", "run", str(EXAMPLES / "pod-nginx" / SCRIPTS["pod-nginx"])],
                                cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 1200
            page = ""
            while time.monotonic() < deadline and proc.poll() is None:
                page = fetch(f"http://127.0.0.1:{port}/")
                if "Welcome to nginx" in page:
                    break
                time.sleep(2)
            assert proc.poll() is None, f"ksi ended early:\n{log.read_text()}"
            assert "Welcome to nginx" in page, f"nginx not reachable:\n{log.read_text()}"
            assert "serving until cancelled" in log.read_text()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    rep = report(workdir)
    assert rep["ports"]["k8s"] == port
    assert_cluster_gone(e2e_stack, rep)
    assert fetch(f"http://127.0.0.1:{port}/") == ""
