"""Where processes sit in the cgroup v2 tree, and which limits apply to them.

Used by the job-scoped runtime (preflight, teardown), by the run report (where kind's node
containers ended up) and by `ksi doctor`. Every function reads files only, under a
configurable root, so the tests feed it fake trees.

Paths returned are cgroup paths as in /proc/<pid>/cgroup ("/system.slice/.../job_1/step_0"),
relative to the cgroup2 mount (default /sys/fs/cgroup).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional

CGROUP_ROOT = "/sys/fs/cgroup"
LIMIT_FILES = ("memory.max", "cpu.max", "pids.max")

INSIDE_JOB = "inside job"
USER_SLICE = "user slice"
ELSEWHERE = "elsewhere"

_STEP = re.compile(r"^step_[^/]+$")
_USER_SLICE = re.compile(r"^/user\.slice(/|$)")


def _read(path: Path) -> Optional[str]:
    try:
        return path.read_text()
    except OSError:
        return None


def unified_path(cgroup_text: str) -> Optional[str]:
    """The cgroup v2 path ('0::<path>' line) of a /proc/<pid>/cgroup text."""
    for line in cgroup_text.splitlines():
        hier, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hier == "0" and controllers == "":
            return path.strip() or "/"
    return None


def container_cgroup(pid: int | str, proc_root: str = "/proc") -> Optional[str]:
    """The cgroup v2 path of process pid (None when it is gone or the host has no v2 line)."""
    text = _read(Path(proc_root) / str(pid) / "cgroup")
    return unified_path(text) if text is not None else None


def job_of(path: str) -> Optional[str]:
    """The job cgroup of a Slurm task/step cgroup path: the ancestor just above step_*.

    Slurm's cgroup/v2 plugin lays out .../job_<id>/step_<id>/user/task_<n>; newer Slurm names
    the job directory by SLUID, so the job is found from the step component, never by name.
    """
    parts = [p for p in path.split("/") if p]
    for i in range(len(parts) - 1, -1, -1):
        if _STEP.match(parts[i]):
            return "/" + "/".join(parts[:i]) if i else "/"
    return None


def job_cgroup(proc_root: str = "/proc", pid: int | str = "self") -> Optional[str]:
    """The Slurm job cgroup of this process (None outside a Slurm step or without v2)."""
    path = container_cgroup(pid, proc_root)
    return job_of(path) if path else None


def is_within(path: str, ancestor: str) -> bool:
    if ancestor == "/":
        return True
    return path == ancestor or path.startswith(ancestor.rstrip("/") + "/")


def placement(pid: int | str, *, job: Optional[str] = None, proc_root: str = "/proc"
              ) -> str:
    """'inside job' | 'user slice' | 'elsewhere' for the process pid.

    job defaults to this process's job cgroup; without one nothing is 'inside job'.
    """
    path = container_cgroup(pid, proc_root)
    if job is None:
        job = job_cgroup(proc_root)
    if path is None:
        return ELSEWHERE
    if job is not None and job != "/" and is_within(path, job):
        return INSIDE_JOB
    if _USER_SLICE.match(path):
        return USER_SLICE
    return ELSEWHERE


def _cpu_ratio(value: str) -> Optional[float]:
    quota, _, period = value.strip().partition(" ")
    if quota == "max":
        return None
    try:
        return int(quota) / int(period or "100000")
    except (ValueError, ZeroDivisionError):
        return None


def _tighter(name: str, a: str, b: str) -> bool:
    """True when limit value a is tighter than b."""
    if name == "cpu.max":
        ra, rb = _cpu_ratio(a), _cpu_ratio(b)
        return ra is not None and (rb is None or ra < rb)
    if a.strip() == "max":
        return False
    if b.strip() == "max":
        return True
    try:
        return int(a) < int(b)
    except ValueError:
        return False


def effective_limits(path: str, cgroup_root: str = CGROUP_ROOT) -> dict[str, dict[str, str]]:
    """The tightest memory.max / cpu.max / pids.max on the way from path up to the root.

    {"memory.max": {"value": "1073741824", "from": "/…/job_7"}, …}; value "max" when nothing
    limits it (from ""), and a file missing everywhere (controller not enabled) is left out.
    """
    out: dict[str, dict[str, str]] = {}
    parts = [p for p in path.split("/") if p]
    for depth in range(len(parts), -1, -1):
        rel = "/" + "/".join(parts[:depth])
        here = Path(cgroup_root, *parts[:depth])
        for name in LIMIT_FILES:
            text = _read(here / name)
            if text is None:
                continue
            value = text.strip()
            cur = out.get(name)
            if cur is None:
                out[name] = {"value": value, "from": rel if value.split(" ")[0] != "max" else ""}
            elif _tighter(name, value, cur["value"]):
                out[name] = {"value": value, "from": rel}
    return out


def host_pid(ns_pid: int, ns_member: int, proc_root: str = "/proc") -> Optional[int]:
    """Map a PID as seen inside a PID namespace (rootlesskit --pidns: the State.Pid that
    `nerdctl inspect` prints) to the host PID, via NSpid in /proc/*/status.

    ns_member is any host PID inside that namespace (rootlesskit's child_pid).
    """
    try:
        target_ns = os.readlink(f"{proc_root}/{ns_member}/ns/pid")
    except OSError:
        target_ns = None
    for entry in Path(proc_root).iterdir():
        if not entry.name.isdigit():
            continue
        text = _read(entry / "status") or ""
        for line in text.splitlines():
            if line.startswith("NSpid:"):
                ids = line.split()[1:]
                if len(ids) >= 2 and ids[-1] == str(ns_pid):
                    if target_ns is None:
                        return int(ids[0])
                    try:
                        if os.readlink(entry / "ns" / "pid") == target_ns:
                            return int(ids[0])
                    except OSError:
                        pass
                break
    return None


def describe(pid: int | str, *, job: Optional[str] = None, proc_root: str = "/proc",
             cgroup_root: str = CGROUP_ROOT) -> dict[str, object]:
    """What the run report and `ksi doctor` show for one node container's process."""
    path = container_cgroup(pid, proc_root)
    return {
        "pid": pid,
        "cgroup": path,
        "placement": placement(pid, job=job, proc_root=proc_root),
        "limits": effective_limits(path, cgroup_root) if path else {},
    }
