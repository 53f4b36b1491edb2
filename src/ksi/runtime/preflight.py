"""Can a private rootless runtime live inside this job's cgroup? (runtime_mode = job)

Checks, in order (docs/runtime.md): cgroup v2 is the host hierarchy; the task cgroup from
/proc/self/cgroup is owned by the user together with the delegate files; cpu, memory and pids
are available in it; cgroup.kill exists; the user has subordinate ids; the binaries exist.
Everything is read under `root` (default "/") so that tests use fake trees.
KSI refuses the mode with the reason when anything is missing — it never pretends.
"""

from __future__ import annotations

import os
import pwd
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from ksi.errors import Exit, KsiError
from ksi.runtime import cgroups

HOOK = "contrib/site-hooks/ksi-delegate-cgroup"
HOOK_FIX = (f"ask the site admin to install the KSI cgroup delegation hook ({HOOK}, see "
            "docs/runtime.md) or use --runtime-mode user")
REQUIRED_CONTROLLERS = ("cpu", "memory", "pids")
CORE_DELEGATE = ("cgroup.procs", "cgroup.subtree_control", "cgroup.threads")

# (alternatives, why): one of the alternatives must be on PATH
BINARIES: dict[str, tuple[tuple[tuple[str, ...], str], ...]] = {
    "nerdctl": (
        (("nerdctl",), "nerdctl >= 1.7"),
        (("containerd",), "containerd >= 1.7"),
        (("containerd-rootless.sh",), "containerd-rootless.sh (nerdctl full bundle)"),
        (("rootlesskit",), "rootlesskit >= 2"),
        (("slirp4netns", "pasta"), "slirp4netns or pasta"),
        (("runc", "crun"), "runc or crun"),
        (("nsenter",), "nsenter (util-linux)"),
    ),
    "podman": (
        (("podman",), "podman"),
        (("conmon",), "conmon"),
        (("runc", "crun"), "runc or crun"),
        (("slirp4netns", "pasta"), "slirp4netns or pasta"),
    ),
}


@dataclass
class Finding:
    """Result of the preflight: what is missing (empty = the mode can run)."""

    missing: list[str] = field(default_factory=list)
    task_cgroup: Optional[str] = None
    job_cgroup: Optional[str] = None
    controllers: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing

    def line(self) -> str:
        return "; ".join(self.missing)


def _mounts_cgroup2(root: Path) -> Optional[str]:
    """fstype mounted at /sys/fs/cgroup per <root>/proc/self/mounts (None: unknown)."""
    try:
        text = (root / "proc/self/mounts").read_text()
    except OSError:
        return None
    fstype = None
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 3 and f[1] == cgroups.CGROUP_ROOT:
            fstype = f[2]  # the last mount on the path wins
    return fstype


def _has_subids(root: Path, uid: int, user: str) -> tuple[bool, bool]:
    def has(name: str) -> bool:
        try:
            text = (root / "etc" / name).read_text()
        except OSError:
            return False
        for line in text.splitlines():
            who = line.split(":", 1)[0].strip()
            if who and who in (user, str(uid)):
                return True
        return False

    return has("subuid"), has("subgid")


def check(provider: str, *, root: str = "/", uid: Optional[int] = None,
          user: Optional[str] = None,
          which: Optional[Callable[[str], Optional[str]]] = None) -> Finding:
    """Every precondition of the job-scoped runtime; nothing is changed."""
    import shutil

    r = Path(root)
    uid = os.getuid() if uid is None else uid
    if user is None:
        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            user = str(uid)
    which = which or shutil.which
    f = Finding()
    fstype = _mounts_cgroup2(r)
    if fstype != "cgroup2":
        kind = {"tmpfs": "cgroup v1/hybrid (tmpfs)", "cgroup": "cgroup v1", None: "unknown"
                }.get(fstype, fstype)
        f.missing.append(f"the host does not run cgroup v2 ({cgroups.CGROUP_ROOT} is {kind})")
    else:
        text = None
        try:
            text = (r / "proc/self/cgroup").read_text()
        except OSError:
            pass
        task = cgroups.unified_path(text or "")
        f.task_cgroup = task
        f.job_cgroup = cgroups.job_of(task) if task else None
        if task is None or task == "/":
            f.missing.append("no task cgroup of this job step in /proc/self/cgroup")
        else:
            _check_task(r, task, uid, f)
    if uid != 0:
        su, sg = _has_subids(r, uid, user)
        if not (su and sg):
            f.missing.append("no subordinate ids for " + user + " in " + " and ".join(
                n for n, ok in (("/etc/subuid", su), ("/etc/subgid", sg)) if not ok))
    lacking = [why for alts, why in BINARIES.get(provider, ())
               if not any(which(a) for a in alts)]
    if lacking:
        f.missing.append("not on PATH: " + ", ".join(lacking))
    return f


def _check_task(r: Path, task: str, uid: int, f: Finding) -> None:
    d = r / cgroups.CGROUP_ROOT.lstrip("/") / task.lstrip("/")
    try:
        st = d.stat()
    except OSError:
        f.missing.append(f"task cgroup {task} is not visible under {cgroups.CGROUP_ROOT}")
        return
    if st.st_uid != uid:
        f.missing.append(f"task cgroup {task} is owned by uid {st.st_uid}, not delegated to "
                         f"uid {uid}")
    else:
        try:
            names = (r / "sys/kernel/cgroup/delegate").read_text().split()
        except OSError:
            names = list(CORE_DELEGATE)
        wrong = []
        for n in names:
            p = d / n
            try:
                if p.stat().st_uid != uid:
                    wrong.append(n)
            except OSError:
                continue  # a delegate file of a controller not enabled here
        if wrong:
            f.missing.append(f"delegate files of {task} not owned by uid {uid}: "
                             + ", ".join(wrong))
    try:
        f.controllers = (d / "cgroup.controllers").read_text().split()
    except OSError:
        f.controllers = []
    lacking = [c for c in REQUIRED_CONTROLLERS if c not in f.controllers]
    if lacking:
        f.missing.append(f"controllers {', '.join(lacking)} not available in {task} "
                         "(cgroup.controllers)" + (" -- Slurm needs EnableExtraControllers=pids"
                                                    if "pids" in lacking else ""))
    if not (d / "cgroup.kill").exists():
        f.missing.append("no cgroup.kill (kernel < 5.14): KSI could not stop the runtime "
                         "reliably")


def require(provider: str, *, root: str = "/", wait: float = 0.0, **kw: object) -> Finding:
    """check(), retried for up to `wait` seconds (a delegation hook may be a moment late),
    then refuse with one line naming what is missing and the site hook."""
    deadline = time.monotonic() + wait
    while True:
        f = check(provider, root=root, **kw)  # type: ignore[arg-type]
        # only a delegation still being applied by the site hook is worth waiting for
        racing = f.missing and all("owned by" in m for m in f.missing)
        if f.ok or not racing or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    if not f.ok:
        raise KsiError(f"runtime_mode=job refused: {f.line()}", HOOK_FIX,
                       code=Exit.RUNTIME_MODE_REFUSED)
    return f
