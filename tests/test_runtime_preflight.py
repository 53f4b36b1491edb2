"""The job-scoped runtime's preflight and the cgroup helpers, on fake cgroup trees
(issue 6, part 1). Fake trees live under a root directory passed as `root` / KSI_HOST_ROOT."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ksi.errors import Exit, KsiError
from ksi.runtime import cgroups, preflight

TASK = "/system.slice/node1_slurmstepd.scope/job_7/step_0/user/task_0"
JOB = "/system.slice/node1_slurmstepd.scope/job_7"
ALL_BINARIES = lambda b: f"/usr/bin/{b}"  # noqa: E731


def fake_tree(root: Path, *, uid: int, fstype: str = "cgroup2", task: str = TASK,
              controllers: str = "cpuset cpu io memory pids", kill: bool = True,
              subids: bool = True, user: str = "alice") -> Path:
    """A fully delegated node (by default) as the KSI hook leaves it."""
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/self/mounts").write_text(
        f"sysfs /sys sysfs rw 0 0\n{fstype} /sys/fs/cgroup {fstype} rw,nsdelegate 0 0\n")
    (root / "proc/self/cgroup").write_text(f"0::{task}\n")
    d = root / "sys/fs/cgroup" / task.lstrip("/")
    d.mkdir(parents=True)
    (d / "cgroup.controllers").write_text(controllers + "\n")
    for name in ("cgroup.procs", "cgroup.subtree_control", "cgroup.threads", "memory.reclaim"):
        (d / name).write_text("")
    if kill:
        (d / "cgroup.kill").write_text("")
    (root / "sys/kernel/cgroup").mkdir(parents=True)
    (root / "sys/kernel/cgroup/delegate").write_text(
        "cgroup.procs\ncgroup.subtree_control\ncgroup.threads\nmemory.reclaim\n")
    (root / "etc").mkdir()
    if subids:
        (root / "etc/subuid").write_text(f"{user}:100000:65536\n")
        (root / "etc/subgid").write_text(f"{user}:100000:65536\n")
    if uid != os.getuid():
        os.chown(d, uid, -1)
        for f in d.iterdir():
            os.chown(f, uid, -1)
    return d


@pytest.fixture
def uid() -> int:
    """The job user of the fake tree: ourselves, or uid 1500 when we are root (so that the
    subordinate-id check, skipped for root, runs too)."""
    return 1500 if os.getuid() == 0 else os.getuid()


def check(root: Path, uid: int, **kw) -> preflight.Finding:
    kw.setdefault("which", ALL_BINARIES)
    return preflight.check("nerdctl", root=str(root), uid=uid, user="alice", **kw)


def test_fully_delegated_tree_passes(tmp_path: Path, uid: int) -> None:
    fake_tree(tmp_path, uid=uid)
    f = check(tmp_path, uid)
    assert f.ok, f.missing
    assert f.task_cgroup == TASK and f.job_cgroup == JOB
    assert preflight.require("nerdctl", root=str(tmp_path), uid=uid, user="alice",
                             which=ALL_BINARIES).ok


@pytest.mark.parametrize("piece,tree_kw,expect", [
    ("cgroup v1", {"fstype": "tmpfs"}, "does not run cgroup v2 (/sys/fs/cgroup is cgroup "
     "v1/hybrid (tmpfs))"),
    ("no task cgroup", {"task": "/"}, "no task cgroup of this job step"),
    ("pids not enabled", {"controllers": "cpuset cpu memory"},
     "controllers pids not available in " + TASK),
    ("memory and pids", {"controllers": "cpuset cpu"}, "controllers memory, pids not available"),
    ("old kernel", {"kill": False}, "no cgroup.kill (kernel < 5.14)"),
    ("no subordinate ids", {"subids": False},
     "no subordinate ids for alice in /etc/subuid and /etc/subgid"),
])
def test_each_missing_piece_is_named(tmp_path: Path, uid: int, piece: str, tree_kw: dict,
                                     expect: str) -> None:
    fake_tree(tmp_path, uid=uid, **tree_kw)
    f = check(tmp_path, uid)
    assert not f.ok, piece
    assert expect in f.line(), f.line()
    assert len(f.missing) == 1, f.missing


def test_task_cgroup_not_owned_by_the_user(tmp_path: Path, uid: int) -> None:
    fake_tree(tmp_path, uid=uid)
    f = check(tmp_path, uid + 1)
    assert f.line().startswith(f"task cgroup {TASK} is owned by uid {uid}, not delegated to "
                               f"uid {uid + 1}")


@pytest.mark.skipif(os.getuid() != 0, reason="chown of a single delegate file needs root")
def test_delegate_file_not_owned(tmp_path: Path, uid: int) -> None:
    d = fake_tree(tmp_path, uid=uid)
    os.chown(d / "cgroup.subtree_control", 0, -1)
    f = check(tmp_path, uid)
    assert f.missing == [f"delegate files of {TASK} not owned by uid {uid}: "
                         "cgroup.subtree_control"]


def test_missing_binaries_are_listed(tmp_path: Path, uid: int) -> None:
    fake_tree(tmp_path, uid=uid)
    have = {"nerdctl", "containerd", "runc", "nsenter", "pasta"}
    f = check(tmp_path, uid, which=lambda b: f"/bin/{b}" if b in have else None)
    assert f.missing == ["not on PATH: containerd-rootless.sh (nerdctl full bundle), "
                         "rootlesskit >= 2"]


def test_require_refuses_with_reason_and_hook(tmp_path: Path, uid: int) -> None:
    fake_tree(tmp_path, uid=uid, controllers="cpu memory")
    with pytest.raises(KsiError) as ei:
        preflight.require("nerdctl", root=str(tmp_path), uid=uid, user="alice",
                          which=ALL_BINARIES)
    e = ei.value
    assert e.code == Exit.RUNTIME_MODE_REFUSED
    line = e.line()
    assert "\n" not in line
    assert "runtime_mode=job refused: controllers pids not available" in line
    assert "EnableExtraControllers=pids" in line
    assert "contrib/site-hooks/ksi-delegate-cgroup" in line


def test_this_machine_is_refused() -> None:
    """Here: cgroup v1/hybrid, so the real check must refuse (never pretend)."""
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        pytest.skip("this host runs cgroup v2: the refusal is tested on fake trees")
    f = preflight.check("nerdctl")
    assert not f.ok and "does not run cgroup v2" in f.missing[0]


# ------------------------------------------------------------------ cgroup helpers
def proc(root: Path, pid: str, path: str) -> None:
    (root / "proc" / pid).mkdir(parents=True, exist_ok=True)
    (root / "proc" / pid / "cgroup").write_text(f"0::{path}\n")


def test_job_cgroup_and_placement(tmp_path: Path) -> None:
    proc(tmp_path, "self", TASK)
    proc(tmp_path, "100", JOB + "/step_0/user/task_0/ksi")
    proc(tmp_path, "101", JOB + "/step_0/user/task_0/default/abc123")
    proc(tmp_path, "200", "/user.slice/user-1500.slice/user@1500.service/app.slice/x.scope")
    proc(tmp_path, "300", "/system.slice/containerd.service")
    proc(tmp_path, "400", "/system.slice/node1_slurmstepd.scope/job_8/step_0/user/task_0")
    pr = str(tmp_path / "proc")
    assert cgroups.job_cgroup(pr) == JOB
    assert cgroups.job_of("/a/job_1/step_batch/user/task_special") == "/a/job_1"
    assert cgroups.job_of("/user.slice") is None
    assert cgroups.placement(101, proc_root=pr) == cgroups.INSIDE_JOB
    assert cgroups.placement(200, proc_root=pr) == cgroups.USER_SLICE
    assert cgroups.placement(300, proc_root=pr) == cgroups.ELSEWHERE
    assert cgroups.placement(400, proc_root=pr) == cgroups.ELSEWHERE   # another job
    assert cgroups.placement(999, proc_root=pr) == cgroups.ELSEWHERE   # gone
    assert cgroups.container_cgroup(100, pr) == JOB + "/step_0/user/task_0/ksi"


def test_cgroup_v1_line_is_ignored() -> None:
    text = "12:memory:/slurm/uid_0/job_1\n0::/\n"
    assert cgroups.unified_path(text) == "/"
    assert cgroups.job_of("/") is None


def test_effective_limits_take_the_tightest_ancestor(tmp_path: Path) -> None:
    cg = tmp_path / "cg"
    job = cg / JOB.lstrip("/")
    task = cg / TASK.lstrip("/")
    task.mkdir(parents=True)
    (cg / "memory.max").write_text("max\n")      # not at the root in reality; harmless
    (job / "memory.max").write_text("1073741824\n")
    (job / "cpu.max").write_text("200000 100000\n")
    (job / "pids.max").write_text("max\n")
    (task / "memory.max").write_text("max\n")
    (task / "cpu.max").write_text("max 100000\n")
    (task / "pids.max").write_text("512\n")
    lim = cgroups.effective_limits(TASK, str(cg))
    assert lim["memory.max"] == {"value": "1073741824", "from": JOB}
    assert lim["cpu.max"] == {"value": "200000 100000", "from": JOB}
    assert lim["pids.max"] == {"value": "512", "from": TASK}
    assert cgroups.effective_limits("/nowhere", str(tmp_path / "none")) == {}


def test_host_pid_from_nspid(tmp_path: Path) -> None:
    (tmp_path / "4711").mkdir()
    (tmp_path / "4711" / "status").write_text("Name:\tsystemd\nNSpid:\t4711\t1\n")
    (tmp_path / "4712").mkdir()
    (tmp_path / "4712" / "status").write_text("Name:\tbash\nNSpid:\t4712\n")
    assert cgroups.host_pid(1, 4711, str(tmp_path)) == 4711
    assert cgroups.host_pid(2, 4711, str(tmp_path)) is None
