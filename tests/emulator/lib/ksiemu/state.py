"""State root, locking, atomic JSON files and the call log.

Every emulated program keeps its state under ``$KSI_EMU_STATE``.  Many processes
(16 parallel ``ksi run``, several Slurm nodes on a shared filesystem) use it at
once, so every read-modify-write happens under ``fcntl.flock`` and every write is
atomic (temporary file + ``os.replace``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Iterator, List, Optional


SHARED_DIR_MODE = 0o1777  # directories shared by several users (root + ksitest)
SHARED_FILE_MODE = 0o666

# Extra fields an emulated tool wants in its call-log line (e.g. kubectl's
# "insecure": true when a kubeconfig skips TLS verification).
CALL_EXTRA: Dict[str, Any] = {}


class EmuExit(Exception):
    """Raised to end an emulated program with an exit code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def root() -> str:
    r = os.environ.get("KSI_EMU_STATE", "")
    if not r:
        sys.stderr.write("emulator: KSI_EMU_STATE is not set\n")
        sys.stderr.flush()
        raise SystemExit(3)
    return r


def hostname() -> str:
    """The emulated machine: KSI_EMU_HOSTNAME (test override) or the real hostname."""
    return os.environ.get("KSI_EMU_HOSTNAME") or os.uname().nodename


def uid() -> int:
    return os.getuid()


def ensure_dir(path: str, shared: bool = False) -> str:
    if not os.path.isdir(path):
        try:
            os.makedirs(path, exist_ok=True)
        except FileExistsError:
            pass
        if shared:
            try:
                os.chmod(path, SHARED_DIR_MODE)
            except PermissionError:
                pass
    return path


def path(*parts: str, shared_levels: int = 0) -> str:
    """Join under the state root; the first ``shared_levels`` components are
    created world-writable (sticky)."""
    r = root()
    ensure_dir(r, shared=True)
    cur = r
    for i, p in enumerate(parts):
        cur = os.path.join(cur, p)
        if i < len(parts) - 1 or shared_levels > i:
            ensure_dir(cur, shared=i < shared_levels)
    return cur


def dir_path(*parts: str, shared_levels: int = 0) -> str:
    p = path(*parts, shared_levels=shared_levels)
    ensure_dir(p, shared=len(parts) <= shared_levels)
    return p


def open_shared(p: str, flags: int) -> int:
    """os.open(p, flags | O_CREAT) for a file several users share in a sticky directory.
    With fs.protected_regular >= 1 (systemd's default, 2 here) the kernel refuses O_CREAT
    on an existing file of another user in a world-writable sticky directory, even to
    root (EACCES; Documentation/admin-guide/sysctl/fs.rst): open it without O_CREAT then,
    read-only if its mode does not let us write (flock works on any fd)."""
    try:
        return os.open(p, flags | os.O_CREAT, SHARED_FILE_MODE)
    except PermissionError:
        try:
            return os.open(p, flags)
        except PermissionError:
            return os.open(p, os.O_RDONLY)


@contextlib.contextmanager
def locked(lock_path: str) -> Iterator[None]:
    ensure_dir(os.path.dirname(lock_path))
    fd = open_shared(lock_path, os.O_RDWR)
    try:
        try:
            os.fchmod(fd, SHARED_FILE_MODE)
        except PermissionError:
            pass
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def read_json(p: str, default: Any = None) -> Any:
    try:
        with open(p, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return default
    except ValueError:
        return default


def write_json(p: str, data: Any, mode: int = SHARED_FILE_MODE) -> None:
    d = os.path.dirname(p)
    ensure_dir(d)
    tmp = os.path.join(d, f".{os.path.basename(p)}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    try:
        os.chmod(tmp, mode)
    except PermissionError:
        pass
    os.replace(tmp, p)


def remove(p: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(p)


def update_json(p: str, fn: Callable[[Any], Any], default: Any = None) -> Any:
    """Read-modify-write ``p`` under its ``.lock``; ``fn`` returns the new value
    (or None to leave the file unchanged) and the final value is returned."""
    with locked(p + ".lock"):
        cur = read_json(p, default)
        new = fn(cur)
        if new is not None:
            write_json(p, new)
            return new
        return cur


# --------------------------------------------------------------------------- call log


def calls_path(r: Optional[str] = None) -> str:
    return os.path.join(r or root(), "calls.jsonl")


def append_call(rec: Dict[str, Any]) -> None:
    p = path("calls.jsonl")
    line = (json.dumps(rec, sort_keys=True) + "\n").encode()
    fd = open_shared(p, os.O_WRONLY | os.O_APPEND)
    try:
        with contextlib.suppress(PermissionError):
            if os.fstat(fd).st_uid == os.getuid():
                os.fchmod(fd, SHARED_FILE_MODE)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line)
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def read_calls(r: str, tool: Optional[str] = None) -> List[Dict[str, Any]]:
    """All call-log records under state root ``r`` (optionally one tool's)."""
    out: List[Dict[str, Any]] = []
    try:
        with open(calls_path(r), encoding="utf-8") as f:
            for raw in f:
                line = raw.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if tool is None or rec.get("tool") == tool:
                    out.append(rec)
    except FileNotFoundError:
        pass
    return out


def run_tool(tool: str, argv: List[str], fn: Callable[[List[str]], int]) -> None:
    """Run an emulated program: state root check, call log, exit code."""
    root()  # exits 3 when KSI_EMU_STATE is unset
    # the bin/ script records its start before any import: durations include
    # interpreter start-up, like the wall time of a real program
    start, t0 = getattr(sys.modules.get("__main__"), "_T0", (time.time(), time.monotonic()))
    code = 0
    try:
        code = fn(argv) or 0
    except EmuExit as e:
        code = e.code
    except SystemExit as e:  # argparse-like exits
        code = e.code if isinstance(e.code, int) else 1
    except BrokenPipeError:
        code = 141
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        with contextlib.suppress(Exception):
            sys.stderr.flush()
    rec: Dict[str, Any] = {
        "tool": tool,
        "argv": list(argv),
        "cwd": os.getcwd(),
        "host": hostname(),
        "uid": os.getuid(),
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "start": start,
        "duration": time.monotonic() - t0,
        "exit": code,
        "env": {
            "KIND_EXPERIMENTAL_PROVIDER": os.environ.get("KIND_EXPERIMENTAL_PROVIDER"),
            "KUBECONFIG": os.environ.get("KUBECONFIG"),
        },
    }
    rec.update(CALL_EXTRA)
    with contextlib.suppress(Exception):
        append_call(rec)
    raise SystemExit(code)


# --------------------------------------------------------------------------- helpers


def out(s: str = "") -> None:
    sys.stdout.write(s if s.endswith("\n") or s == "" else s + "\n")


def err(s: str = "") -> None:
    sys.stderr.write(s if s.endswith("\n") else s + "\n")


def fail(msg: str, code: int = 1) -> None:
    err(msg)
    raise EmuExit(code)


def now() -> float:
    return time.time()


def rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def env_float(name: str, default: float) -> float:
    v = os.environ.get(name, "")
    if v == "":
        return default
    try:
        return float(v)
    except ValueError:
        return default
