"""The site hook contrib/site-hooks/ksi-delegate-cgroup on a fake cgroup tree, checked by
KSI's own preflight. (A real cgroup v2 Slurm node is needed for the real thing; this host
runs cgroup v1/hybrid — see docs/runtime.md.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from tests.conftest import ROOT
from tests.test_runtime_preflight import ALL_BINARIES, TASK, fake_tree

from ksi.runtime import preflight

HOOK = ROOT / "contrib" / "site-hooks" / "ksi-delegate-cgroup"
USER_UID = 1500

pytestmark = pytest.mark.skipif(os.getuid() != 0, reason="the hook chowns: needs root")


def hook(root: Path, *args: str, **kw) -> subprocess.Popen | subprocess.CompletedProcess:
    env = dict(os.environ, KSI_CGROUP_ROOT=str(root / "sys/fs/cgroup"),
               KSI_DELEGATE_FILE=str(root / "sys/kernel/cgroup/delegate"),
               KSI_WATCH_INTERVAL="0.1", PATH="/usr/sbin:/usr/bin:/sbin:/bin")
    env.pop("SLURM_JOB_ID", None)
    argv = ["bash", str(HOOK), *args]
    if kw.pop("background", False):
        return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)


@pytest.fixture
def node(tmp_path: Path) -> Path:
    """A cgroup v2 node as stock Slurm leaves it: the task cgroup owned by root."""
    fake_tree(tmp_path, uid=0, user="alice")
    (tmp_path / "sys/fs/cgroup/cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    return tmp_path


def check(root: Path) -> preflight.Finding:
    return preflight.check("nerdctl", root=str(root), uid=USER_UID, user="alice",
                           which=ALL_BINARIES)


def test_hook_delegates_and_preflight_then_passes(node: Path) -> None:
    assert "owned by uid 0" in check(node).line()
    res = hook(node, "--job", "7", "--uid", str(USER_UID))
    assert res.returncode == 0, res.stderr
    f = check(node)
    assert f.ok, f.missing
    task = node / "sys/fs/cgroup" / TASK.lstrip("/")
    owned = {p.name for p in task.iterdir() if p.stat().st_uid == USER_UID}
    assert owned == {"cgroup.procs", "cgroup.subtree_control", "cgroup.threads",
                     "memory.reclaim"}
    # never the job or step cgroups themselves
    assert (task.parent.parent.parent).stat().st_uid == 0 and task.parent.stat().st_uid == 0


def test_hook_ignores_other_jobs_and_root(node: Path) -> None:
    assert hook(node, "--job", "8", "--uid", str(USER_UID)).returncode == 0
    assert hook(node, "--job", "7", "--uid", "0").returncode == 0
    assert "owned by uid 0" in check(node).line()


def test_hook_refuses_bad_arguments(node: Path) -> None:
    assert hook(node, "--uid", "1500").returncode == 1       # no job id
    assert hook(node, "--job", "7;true", "--uid", "1500").returncode == 1


def test_watch_delegates_later_steps_and_ends_with_the_job(node: Path) -> None:
    proc = hook(node, "--watch", "--job", "7", "--uid", str(USER_UID), "--timeout", "30",
                background=True)
    try:
        job = node / "sys/fs/cgroup/system.slice/node1_slurmstepd.scope/job_7"
        later = job / "step_1/user/task_0"
        later.mkdir(parents=True)
        (later / "cgroup.procs").write_text("")
        deadline = time.monotonic() + 10
        while later.stat().st_uid != USER_UID and time.monotonic() < deadline:
            time.sleep(0.1)
        assert later.stat().st_uid == USER_UID
        assert (later / "cgroup.procs").stat().st_uid == USER_UID
        shutil.rmtree(job)                                    # the job ends
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
