"""Issue 6 on a real node: the job-scoped runtime, offline images, bypass4netns.

Each test skips with the precise reason where the node cannot show it (here: no kind, no
rootless runtime, cgroup v1/hybrid; see tests/e2e/conftest.py), and names what else it needs:
- job mode: a Slurm job step on a cgroup v2 node whose task cgroup the site delegated
  (contrib/site-hooks/ksi-delegate-cgroup); run this file inside `srun`.
- offline images: KSI_E2E_NODE_ARCHIVE (an archive of the node image, `ksi images save`)
  and KSI_E2E_IMAGE_ARCHIVES with docker.io_library_busybox_latest.tar.
- bypass4netns: rootless nerdctl with bypass4netnsd running for the user.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from tests.e2e.conftest import Stack, e2e_environ

from ksi import images
from ksi.runtime import bypass, cgroups, preflight

pytestmark = pytest.mark.e2e


def ksi(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 900
        ) -> subprocess.CompletedProcess:
    return subprocess.run(["ksi", *args], env=env, cwd=str(cwd), capture_output=True,
                          text=True, timeout=timeout)


def report(cwd: Path) -> dict:
    return json.loads(next(cwd.glob("ksi-report-*.json")).read_text())


def test_job_mode_keeps_node_containers_inside_the_job(e2e_stack: Stack, tmp_path: Path
                                                       ) -> None:
    if not os.environ.get("SLURM_JOB_ID"):
        pytest.skip("job-scoped runtime: run this test inside a Slurm job step (srun)")
    found = preflight.check(e2e_stack.provider)
    if not found.ok:
        pytest.skip(f"job-scoped runtime refused on this node: {found.line()}")
    env = e2e_environ(e2e_stack)
    env.update({k: v for k, v in os.environ.items() if k.startswith("SLURM_")})
    job_cg = cgroups.job_cgroup()
    (tmp_path / "wl.sh").write_text("#!/bin/bash\nkubectl get nodes\n")
    res = ksi(["run", "--runtime-mode", "job", "wl.sh"], env, tmp_path)
    assert res.returncode == 0, res.stderr
    rt = report(tmp_path)["runtime"]
    assert rt["node_cgroups"], rt
    for name, node in rt["node_cgroups"].items():
        assert node["placement"] == cgroups.INSIDE_JOB, (name, node, job_cg)
        assert node["limits"], node      # the job's limits apply to the node
    assert not Path(rt["job_runtime"]["dir"]).exists()


def test_offline_node_image_and_preload(e2e_stack: Stack, tmp_path: Path) -> None:
    node_archive = os.environ.get("KSI_E2E_NODE_ARCHIVE", "")
    if not node_archive or not Path(node_archive).is_file():
        pytest.skip("offline images: set KSI_E2E_NODE_ARCHIVE to an archive of the node "
                    "image (ksi images save IMAGE --dir D)")
    busybox = Path(os.environ.get("KSI_E2E_IMAGE_ARCHIVES", "/nonexistent")) / \
        images.archive_name("busybox")
    if not busybox.is_file():
        pytest.skip(f"offline images: {busybox} is missing (ksi images save busybox)")
    env = e2e_environ(e2e_stack)
    (tmp_path / "wl.sh").write_text(
        "#!/bin/bash\nset -e\nkubectl run bb --image=docker.io/library/busybox:latest "
        "--image-pull-policy=Never --restart=Never -- true\n"
        "kubectl wait --for=jsonpath='{.status.phase}'=Succeeded pod/bb --timeout=120s\n")
    res = ksi(["run", "--image-archive", node_archive, "--preload", str(busybox), "wl.sh"],
              env, tmp_path)
    assert res.returncode == 0, res.stderr
    rt = report(tmp_path)["runtime"]
    assert rt["node_image"]["action"] in ("present", "loaded")
    assert rt["preloaded"] == [str(busybox)]


def test_bypass4netns_annotates_the_node_container(e2e_stack: Stack, tmp_path: Path
                                                   ) -> None:
    if e2e_stack.provider != "nerdctl":
        pytest.skip(f"bypass4netns: needs rootless nerdctl (stack: {e2e_stack.provider})")
    env = e2e_environ(e2e_stack)
    if not bypass.daemon_running(env):
        pytest.skip("bypass4netns: bypass4netnsd is not running for this user")
    (tmp_path / "wl.sh").write_text(
        "#!/bin/bash\nnerdctl inspect -f '{{json .Config.Annotations}}' "
        "\"${K8S_CLUSTER_NAME#kind-}-control-plane\" > annotations.json\n")
    res = ksi(["run", "--bypass4netns", "on", "wl.sh"], env, tmp_path)
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "annotations.json").read_text()).get(
        "nerdctl/bypass4netns") == "true"
    assert bypass.SLIRP_WARNING not in res.stderr
