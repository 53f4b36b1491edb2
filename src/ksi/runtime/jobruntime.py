"""A private rootless container runtime that lives and dies with the job step.

nerdctl: `containerd-rootless.sh` (rootlesskit + containerd) started as KSI's child with
per-run XDG_RUNTIME_DIR / XDG_DATA_HOME / XDG_CONFIG_HOME under a short node-local 0700
directory /tmp/ksi-<job>.<step>, NERDCTL_TOML with cgroup_manager = "cgroupfs" and
CONTAINERD_ROOTLESS_ROOTLESSKIT_FLAGS="--pidns --cgroupns --evacuate-cgroup2=ksi".
podman (no daemon): a per-job CONTAINERS_CONF (cgroupfs, file events; the site's own
containers.conf settings kept) and CONTAINERS_STORAGE_CONF with the storage under the job dir
(those files: ksi.runtime.jobconf).

`env()` is what kind, kubectl and the provider get. `stop()` tears everything down:
SIGTERM rootlesskit, SIGKILL, cgroup.kill on the cgroups the runtime made, remove the dir.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Optional

from ksi.errors import Exit, KsiError
from ksi.procfs import ancestors, user_processes
from ksi.runtime import cgroups, jobconf

if TYPE_CHECKING:
    import subprocess

    from ksi.runner import Runner

log = logging.getLogger("ksi.runtime")

ROOTLESSKIT_FLAGS = "--pidns --cgroupns --evacuate-cgroup2=ksi"
EVACUATED = "ksi"        # rootlesskit moves the task's processes (KSI included) here
STOP_GRACE = 20.0


def job_dir(job_id: str, step_id: str, base: str = "/tmp") -> Path:
    """Short, node-local: unix socket paths below it must stay under 108 bytes."""
    return Path(base) / f"ksi-{job_id}.{step_id}"


class JobRuntime:
    """The private runtime of one job step (see module doc)."""

    def __init__(self, provider: str, runner: Runner, *, job_id: str, step_id: str,
                 base: str = "/tmp", environ: Optional[Mapping[str, str]] = None,
                 cgroup_root: str = cgroups.CGROUP_ROOT, task_cgroup: Optional[str] = None
                 ) -> None:
        if provider not in ("nerdctl", "podman"):
            raise KsiError(f"runtime_mode=job supports nerdctl and podman, not {provider}",
                           "use --provider nerdctl or podman, or --runtime-mode user",
                           code=Exit.RUNTIME_MODE_REFUSED)
        self.provider = provider
        self.runner = runner
        self.dir = job_dir(job_id, step_id, base)
        self.environ = dict(os.environ if environ is None else environ)
        self.cgroup_root = cgroup_root
        self.task_cgroup = task_cgroup
        self.proc: Optional[subprocess.Popen] = None
        self.made = False
        self.info: dict[str, Any] = {"dir": str(self.dir), "provider": provider}

    # paths
    @property
    def run_dir(self) -> Path:
        return self.dir / "run"

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def cfg_dir(self) -> Path:
        return self.dir / "cfg"

    @property
    def log_path(self) -> Path:
        return self.dir / "runtime.log"

    @property
    def child_pid_file(self) -> Path:
        return self.run_dir / "containerd-rootless" / "child_pid"

    def env(self) -> dict[str, str]:
        """Environment for kind, kubectl and the provider's own commands."""
        env = {
            "XDG_RUNTIME_DIR": str(self.run_dir),
            "XDG_DATA_HOME": str(self.data_dir),
            "XDG_CONFIG_HOME": str(self.cfg_dir),
        }
        if self.provider == "nerdctl":
            env["NERDCTL_TOML"] = str(self.cfg_dir / "nerdctl" / "nerdctl.toml")
            env["CONTAINERD_ROOTLESS_ROOTLESSKIT_FLAGS"] = ROOTLESSKIT_FLAGS
        else:
            env["CONTAINERS_CONF"] = str(self.cfg_dir / "containers" / "containers.conf")
            env["CONTAINERS_STORAGE_CONF"] = str(self.cfg_dir / "containers" / "storage.conf")
        return env

    # ------------------------------------------------------------------ set up
    def prepare(self) -> None:
        """Create the 0700 directory tree and the config files (no process started)."""
        try:
            os.mkdir(self.dir, 0o700)
        except FileExistsError as exc:
            st = os.lstat(self.dir)
            if st.st_uid != os.getuid() or not os.path.isdir(self.dir) or \
                    os.path.islink(self.dir):
                raise KsiError(f"{self.dir} exists and is not a private directory of yours",
                               f"remove {self.dir} (a leftover of an earlier step?)",
                               code=Exit.STATE_UNSAFE) from exc
            os.chmod(self.dir, 0o700)
        except OSError as exc:
            raise KsiError(f"cannot create {self.dir}: {exc.strerror}",
                           "check /tmp on this node", code=Exit.STATE_UNSAFE) from exc
        self.made = True
        for d in (self.run_dir, self.data_dir, self.cfg_dir):
            d.mkdir(mode=0o700, exist_ok=True)
        jobconf.write(self.provider, self.env(), run_dir=self.run_dir, data_dir=self.data_dir,
                      environ=self.environ)

    def start(self, timeout: float = 60.0) -> None:
        """Prepare and, for nerdctl, start rootless containerd; check the runtime answers."""
        self.prepare()
        if self.provider == "nerdctl":
            self._start_containerd(timeout)
        from ksi.provision import providers

        info = providers.get(self.provider, self.runner, env=self.env()).info(
            timeout=timeout, fix=f"read {self.log_path}; see docs/runtime.md")
        self.info["runtime_info"] = info.summary()
        if info.cgroup_manager and info.cgroup_manager != "cgroupfs":
            log.warning("warning: job-scoped %s uses cgroup driver %s, not cgroupfs: node "
                        "containers may land outside the job", self.provider,
                        info.cgroup_manager)

    def _start_containerd(self, timeout: float) -> None:
        env = self.env()
        # containerd-rootless.sh logs a lot: into a file, not the job's output
        argv = ["sh", "-c", 'exec containerd-rootless.sh >"$0" 2>&1', str(self.log_path)]
        self.proc = self.runner.spawn(argv, env=env)
        self.info["rootlesskit_pid"] = self.proc.pid
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.child_pid_file.exists():
                self.info["child_pid"] = self.child_pid_file.read_text().strip()
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        tail = ""
        try:
            tail = self.log_path.read_text().strip().splitlines()[-1]
        except (OSError, IndexError):
            pass
        raise KsiError("the job-scoped rootless containerd did not start"
                       + (f": {tail}" if tail else ""),
                       f"read {self.log_path}; see docs/runtime.md",
                       code=Exit.RUNTIME_UNAVAILABLE)

    # ------------------------------------------------------------------ tear down
    def stop(self) -> list[str]:
        """Stop the runtime and remove its directory. Idempotent; returns problems."""
        problems: list[str] = []
        if self.provider == "podman" and self.made:
            self.runner.run(["podman", "rm", "-a", "-f", "-t", "0"], env=self.env(),
                            timeout=120, check=False)
            if os.getuid() != 0:   # files of subordinate ids: remove them inside the userns
                self.runner.run(["podman", "unshare", "rm", "-rf", str(self.data_dir)],
                                env=self.env(), timeout=120, check=False)
                self._kill_pidfile(self.run_dir / "libpod" / "tmp" / "pause.pid")
        if self.proc is not None:
            from ksi.runner import stop_group

            stop_group(self.proc, grace=STOP_GRACE)   # SIGTERM, then SIGKILL (--pidns)
            self.proc = None
        problems += self._kill_cgroups()
        if self.made:
            if self.provider == "nerdctl" and os.getuid() != 0 and self.dir.exists() \
                    and shutil.which("rootlesskit"):
                self.runner.run(["rootlesskit", "rm", "-rf", str(self.dir)], timeout=120,
                                check=False)
            self._remove_dir()
            if self.dir.exists():
                problems.append(f"could not remove {self.dir}")
            else:
                self.made = False
        return problems

    def _kill_pidfile(self, path: Path) -> None:
        try:
            pid = int(path.read_text().strip())
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass

    def _kill_cgroups(self) -> list[str]:
        """cgroup.kill and rmdir (bottom-up) the cgroups the runtime made under the task
        cgroup; the evacuation group holding KSI itself is left to Slurm."""
        if not self.task_cgroup:
            return []
        top = Path(self.cgroup_root) / self.task_cgroup.lstrip("/")
        mine = cgroups.container_cgroup("self") or ""
        problems = []
        try:
            children = [c for c in top.iterdir() if c.is_dir()]
        except OSError:
            return []
        for child in children:
            rel = "/" + str(child.relative_to(self.cgroup_root))
            if child.name == EVACUATED or cgroups.is_within(mine, rel):
                continue
            try:
                (child / "cgroup.kill").write_text("1")
            except OSError as exc:
                problems.append(f"cgroup.kill {rel}: {exc.strerror}")
                continue
            for d in sorted((p for p in child.rglob("*") if p.is_dir()),
                            key=lambda p: len(p.parts), reverse=True) + [child]:
                for _ in range(20):
                    try:
                        d.rmdir()
                        break
                    except OSError:
                        time.sleep(0.1)
        return problems

    def _remove_dir(self, timeout: float = 10.0) -> None:
        """Remove the job dir. Processes the runtime detached (podman's conmon, which runs
        `podman container cleanup` when its container dies; a `podman run` that Slurm's
        SIGTERM reached first) may still write into it and re-create its storage: kill
        them and remove the dir until a pass finds no such process (bounded)."""
        deadline = time.monotonic() + timeout
        while True:
            killed = self._kill_stragglers()
            shutil.rmtree(self.dir, ignore_errors=True)
            if (not killed and not self.dir.exists()) or time.monotonic() > deadline:
                return
            time.sleep(0.1)  # let the killed processes die before the next pass

    def _kill_stragglers(self, proc_root: str = "/proc",
                         kill: Callable[[int, int], None] = os.kill) -> list[int]:
        """SIGKILL the processes whose command line or environment names the job dir or a
        path in it (/tmp/ksi-7.1 does not name /tmp/ksi-7.10); never this process or its
        ancestors (a shell that exported the runtime's environment), never another user's.
        Returns their pids."""
        needle = str(self.dir).encode()
        killed = []
        for entry in user_processes(os.getuid(), proc_root, spare=ancestors(proc_root)):
            if any(needle + b"/" in text or needle + b"\0" in text
                   for text in _read_each(entry / "cmdline", entry / "environ")):
                try:
                    kill(int(entry.name), signal.SIGKILL)
                    killed.append(int(entry.name))
                except OSError:
                    pass
        return killed


def _read_each(*paths: Path) -> Iterator[bytes]:
    """The contents of each path that can be read (a process may be gone)."""
    for path in paths:
        try:
            yield path.read_bytes()
        except OSError:
            continue


def main(argv: Optional[list[str]] = None) -> int:
    """`python -m ksi.runtime.jobruntime [--base DIR] [--start] nerdctl|podman [-- CMD...]`

    Prepares the job step's private runtime directory and prints its environment as shell
    exports (debugging). --start also starts it. With `-- CMD...` it starts the runtime, runs
    CMD with its environment and stops everything when CMD ends or when Slurm sends SIGTERM
    (scancel, time limit) -- KSI's teardown in miniature, used by the Slurm test bed.
    Needs SLURM_JOB_ID; the step is SLURM_STEP_ID or 'batch'."""
    import argparse
    import shlex

    from ksi.runner import Runner, stop_group

    ap = argparse.ArgumentParser(prog="python -m ksi.runtime.jobruntime")
    ap.add_argument("provider", choices=("nerdctl", "podman"))
    ap.add_argument("--base", default="/tmp")
    ap.add_argument("--start", action="store_true")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    job = os.environ.get("SLURM_JOB_ID", "")
    step = os.environ.get("SLURM_STEP_ID") or "batch"
    if not job:
        print("SLURM_JOB_ID is not set", file=sys.stderr)
        return 2
    rt = JobRuntime(args.provider, Runner(), job_id=job, step_id=step, base=args.base)
    if not cmd:
        if args.start:
            rt.start()
        else:
            rt.prepare()
        for k, v in rt.env().items():
            print(f"export {k}={shlex.quote(v)}")
        return 0
    got: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: got.append(signum))
    code = 1
    try:
        rt.start()
        child = rt.runner.spawn(cmd, env=rt.env())
        while child.poll() is None and not got:
            time.sleep(0.1)
        if got:
            stop_group(child, grace=1.0)
            code = 128 + got[0]
        else:
            code = child.returncode
    finally:
        problems = rt.stop()
        for p in problems:
            print(f"ksi: teardown problem: {p}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
