"""Python helper around the KSI Slurm test bed (``tests/slurm/testbed``).

Stdlib only. Typical use from a test::

    bed = Testbed()
    bed.up()
    job = bed.sbatch("#!/bin/bash\\nsrun hostname\\n", user="ksitest", nodes=3,
                     cwd=bed.shared_dir("demo", user="ksitest"))
    bed.wait_gone(job, timeout=30)
    assert bed.job_state(job) == "COMPLETED"

All Slurm commands run on the host (the host is the submit node). Commands for
another user run through ``runuser -u USER -- env -i ...`` with a clean login-like
environment that includes PATH and SLURM_CONF; sbatch exports that environment
to the job (Slurm's default ``--export=ALL``).
"""

from __future__ import annotations

import os
import platform
import pwd
import shutil
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Callable, TypeVar, Union

HERE = Path(__file__).resolve().parent
TESTBED_SCRIPT = HERE / "testbed"
DEFAULT_STATE = "/var/tmp/ksi-testbed"
TEST_USER = "ksitest"  # uid 1500
OTHER_USER = "ksiother"  # uid 1501
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# job states after which a job will not run again
TERMINAL_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
    }
)

_REQUIRED_COMMANDS = (
    "slurmctld",
    "slurmd",
    "slurmstepd",
    "srun",
    "sbatch",
    "squeue",
    "scancel",
    "scontrol",
    "sinfo",
    "munged",
    "munge",
    "ip",
    "nsenter",
    "unshare",
    "runuser",
    "flock",
    "ss",
)
_CAP_NET_ADMIN = 12
_CAP_SYS_ADMIN = 21

T = TypeVar("T")
ScriptArg = Union[str, "os.PathLike[str]"]


def state_dir() -> Path:
    return Path(os.environ.get("KSI_TESTBED_STATE", DEFAULT_STATE))


def _effective_caps() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    except OSError:
        return None
    return None


def testbed_unavailable_reason() -> str | None:
    """Why the Slurm test bed cannot run here, or None if it can.

    Set ``KSI_TESTBED_DISABLE=1`` to force skipping.
    """
    if os.environ.get("KSI_TESTBED_DISABLE", "0") not in ("", "0"):
        return "KSI_TESTBED_DISABLE is set"
    if platform.system() != "Linux":
        return f"the Slurm test bed needs Linux namespaces (this is {platform.system()})"
    if os.geteuid() != 0:
        return "the Slurm test bed must run as root (network namespaces, bridge, daemons)"
    if not TESTBED_SCRIPT.is_file():
        return f"{TESTBED_SCRIPT} is missing"
    missing = [c for c in _REQUIRED_COMMANDS if shutil.which(c) is None]
    if missing:
        pkgs = (
            (HERE / "ci-packages.txt").read_text().split()
            if (HERE / "ci-packages.txt").is_file()
            else []
        )
        hint = " ".join(pkgs) or "slurmctld slurmd slurm-client munge iproute2 util-linux"
        return (
            f"missing commands {', '.join(missing)} "
            f"(apt-get install -y --no-install-recommends {hint})"
        )
    caps = _effective_caps()
    if caps is not None:
        for bit, name in ((_CAP_NET_ADMIN, "CAP_NET_ADMIN"), (_CAP_SYS_ADMIN, "CAP_SYS_ADMIN")):
            if not caps & (1 << bit):
                return f"{name} is missing (needed for network/UTS/mount namespaces)"
    if not Path("/proc/self/ns/net").exists() or not Path("/proc/self/ns/uts").exists():
        return "kernel without network/UTS namespaces"
    # `ip netns` needs /run/netns to be usable and the kernel to allow new netns + veth/bridge;
    # a cheap probe: create and delete an unused namespace.
    probe = f"ksit-probe-{os.getpid()}"
    try:
        r = subprocess.run(
            ["ip", "netns", "add", probe], check=False, capture_output=True, text=True, timeout=10
        )
        if r.returncode != 0:
            return f"'ip netns add' does not work here: {r.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], check=False, capture_output=True, timeout=10)
    return None


def wait_for(
    predicate: Callable[[], T], timeout: float, interval: float = 0.05, what: str = ""
) -> T:
    """Poll ``predicate`` until it returns a truthy value; return that value.

    Raises TimeoutError after ``timeout`` seconds (the predicate is evaluated once more
    at the deadline).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate!r}")
        time.sleep(interval)


class SlurmError(RuntimeError):
    pass


class Testbed:
    """Handle on the test bed; cheap to create, all state is on disk."""

    __test__ = False  # not a pytest test class

    def __init__(self, state: str | os.PathLike[str] | None = None) -> None:
        self.state = Path(state) if state is not None else state_dir()
        self.conf = self.state / "etc" / "slurm.conf"
        self.shared = self.state / "shared"

    # ------------------------------------------------------------------ lifecycle
    def _script(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, KSI_TESTBED_STATE=str(self.state))
        return subprocess.run(
            [str(TESTBED_SCRIPT), *args],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def up(self, nodes: int = 3) -> str:
        """Bring the bed up with ``nodes`` nodes (idempotent). Returns the script's output."""
        r = self._script("up", str(nodes))
        if r.returncode != 0:
            raise SlurmError(
                f"testbed up {nodes} failed (rc {r.returncode}):\n{r.stdout}{r.stderr}"
            )
        return r.stdout

    def down(self) -> str:
        r = self._script("down")
        if r.returncode != 0:
            raise SlurmError(f"testbed down failed (rc {r.returncode}):\n{r.stdout}{r.stderr}")
        return r.stdout

    def is_up(self) -> bool:
        return self._script("status", timeout=60).returncode == 0

    def nodes(self) -> list[str]:
        """Node names configured in slurm.conf (node1..N)."""
        if not self.conf.is_file():
            return []
        names = []
        for line in self.conf.read_text().splitlines():
            if line.startswith("NodeName="):
                names.append(line.split()[0].split("=", 1)[1])
        return names

    def env(self) -> dict[str, str]:
        """Environment additions that Slurm clients need (SLURM_CONF)."""
        return {"SLURM_CONF": str(self.conf)}

    # ------------------------------------------------------------------ running commands
    def user_env(
        self, user: str | None = None, env: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Environment for a Slurm client (and the job it submits) run as ``user``.

        root/None: the current environment. Another user: a clean login-like environment.
        Both get SLURM_CONF and a PATH; ``env`` entries override.
        """
        if user is None or user == "root":
            base = dict(os.environ)
            base.setdefault("PATH", DEFAULT_PATH)
        else:
            pw = pwd.getpwnam(user)
            base = {
                "HOME": pw.pw_dir,
                "USER": pw.pw_name,
                "LOGNAME": pw.pw_name,
                "SHELL": pw.pw_shell or "/bin/sh",
                "PATH": DEFAULT_PATH,
                "LANG": os.environ.get("LANG", "C.UTF-8"),
            }
        base.update(self.env())
        if env:
            base.update(env)
        return base

    def command(
        self, args: Sequence[str], *, user: str | None = None, env: Mapping[str, str] | None = None
    ) -> tuple[list[str], dict[str, str]]:
        """argv and environment to run ``args`` as ``user`` (None = current user)."""
        full_env = self.user_env(user, env)
        if user is None or (user == "root" and os.geteuid() == 0):
            return list(args), full_env
        envargs = [f"{k}={v}" for k, v in full_env.items()]
        return ["runuser", "-u", user, "--", "env", "-i", *envargs, *args], {"PATH": DEFAULT_PATH}

    def run(
        self,
        args: Sequence[str],
        *,
        user: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        timeout: float | None = 60,
        input: str | None = None,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command (Slurm client or anything else) as ``user``; output captured as text."""
        argv, full_env = self.command(args, user=user, env=env)
        return subprocess.run(
            argv,
            env=full_env,
            cwd=cwd,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def shared_dir(self, name: str = "", *, user: str | None = None) -> Path:
        """A fresh directory on the shared filesystem (visible on host and all nodes).

        Owned by ``user`` (default root), mode 0755, under ``$STATE/shared``.
        """
        base = self.shared
        base.mkdir(parents=True, exist_ok=True)
        path = base / f"{name or 'dir'}-{uuid.uuid4().hex[:8]}"
        path.mkdir(mode=0o755)
        path.chmod(0o755)
        if user is not None and user != "root":
            pw = pwd.getpwnam(user)
            os.chown(path, pw.pw_uid, pw.pw_gid)
        return path

    # ------------------------------------------------------------------ Slurm wrappers
    def sbatch(
        self,
        script: ScriptArg,
        *,
        user: str | None = None,
        nodes: int = 1,
        cwd: str | os.PathLike[str] | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        timeout: float = 60,
    ) -> str:
        """Submit a batch job; return its job id.

        ``script`` is either the script text (a ``str``, sent on stdin; a ``#!/bin/bash``
        line is added if it has no shebang) or a path (``os.PathLike``) to a script file.
        ``cwd`` is the job's working directory (``--chdir``) and defaults to a fresh
        shared directory owned by ``user``.
        """
        workdir = Path(cwd) if cwd is not None else self.shared_dir("job", user=user)
        args = ["sbatch", "--parsable", f"--nodes={nodes}", f"--chdir={workdir}", *extra_args]
        stdin_text: str | None = None
        if isinstance(script, str):
            stdin_text = script if script.startswith("#!") else "#!/bin/bash\n" + script
        else:
            args.append(str(Path(script)))
        r = self.run(args, user=user, env=env, cwd=workdir, timeout=timeout, input=stdin_text)
        if r.returncode != 0:
            raise SlurmError(f"sbatch failed (rc {r.returncode}): {r.stderr.strip()}")
        return r.stdout.strip().split(";", 1)[0]

    def srun(
        self,
        args: Sequence[str],
        *,
        user: str | None = None,
        nodes: int = 1,
        timeout: float = 60,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``srun -N nodes [extra_args] args...`` and return the completed process.

        Default working directory: the shared scratch dir (accessible to every user).
        """
        workdir = Path(cwd) if cwd is not None else self.shared
        argv = ["srun", f"--nodes={nodes}", *extra_args, *args]
        return self.run(argv, user=user, env=env, cwd=workdir, timeout=timeout)

    def squeue_state(self, job_id: str) -> str | None:
        """Job state as seen by squeue, or None if squeue no longer knows the job."""
        r = self.run(["squeue", "-h", "-j", str(job_id), "-o", "%T"], timeout=30)
        out = r.stdout.strip()
        return out.splitlines()[0] if r.returncode == 0 and out else None

    def wait_gone(self, job_id: str, timeout: float = 60) -> str | None:
        """Wait until the job has left the queue (polls ``squeue`` every 50 ms).

        Returns the final state from ``scontrol show job`` (None if already purged).
        """

        def gone() -> bool:
            st = self.squeue_state(job_id)
            return st is None or st in TERMINAL_STATES

        wait_for(gone, timeout, 0.05, what=f"job {job_id} to finish")
        return self.job_state(job_id)

    def wait_running(self, job_id: str, timeout: float = 60) -> None:
        """Wait until the job is RUNNING (raises SlurmError if it ends first)."""

        def running() -> bool:
            st = self.job_state(job_id)
            if st in TERMINAL_STATES:
                raise SlurmError(f"job {job_id} ended ({st}) before it was seen running")
            return st == "RUNNING"

        wait_for(running, timeout, 0.05, what=f"job {job_id} to run")

    def job_info(self, job_id: str) -> dict[str, str]:
        """``scontrol show job -o ID`` as a dict (empty if unknown). Completed jobs stay
        visible for MinJobAge (300 s) after they end."""
        r = self.run(["scontrol", "show", "job", "-o", str(job_id)], timeout=30)
        if r.returncode != 0:
            return {}
        info: dict[str, str] = {}
        for token in r.stdout.split():
            key, sep, value = token.partition("=")
            if sep and key not in info:
                info[key] = value
        return info

    def job_state(self, job_id: str) -> str | None:
        """JobState (RUNNING, COMPLETED, CANCELLED, ...) or None if unknown."""
        return self.job_info(job_id).get("JobState")

    def scancel(
        self,
        job_id: str,
        *,
        user: str | None = None,
        signal: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> subprocess.CompletedProcess[str]:
        """``scancel [--signal=SIG] ID`` as ``user``. Without ``signal`` the job is cancelled:
        every task gets SIGTERM, then SIGKILL after KillWait seconds."""
        args = ["scancel", *extra_args]
        if signal:
            args.append(f"--signal={signal}")
        args.append(str(job_id))
        return self.run(args, user=user, timeout=30)


# ---------------------------------------------------------------------- session registry
def sessions_dir(bed: Testbed) -> Path:
    """pytest sessions using the bed register as empty files named by their PID here."""
    return bed.state / "sessions"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live_sessions(bed: Testbed, *, exclude_self: bool = True) -> list[int]:
    """PIDs of other pytest sessions currently using the bed (stale entries are removed)."""
    pids = []
    d = sessions_dir(bed)
    if not d.is_dir():
        return []
    for entry in d.iterdir():
        try:
            pid = int(entry.name)
        except ValueError:
            continue
        if not _pid_alive(pid):
            entry.unlink(missing_ok=True)
            continue
        if exclude_self and pid == os.getpid():
            continue
        pids.append(pid)
    return pids
