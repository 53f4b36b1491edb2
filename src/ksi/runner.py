"""The one way KSI runs external programs: timeout, logged command with secrets masked,
stderr carried into the error. Nothing else in KSI imports subprocess."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional, Sequence

from ksi.errors import CommandFailed, CommandTimeout, Exit, ToolMissing, last_line

log = logging.getLogger("ksi.runner")

_SECRETS: set[str] = set()
MASK = "***"


def add_secret(value: str) -> None:
    """Register a value (a token, a key) that must never appear in logs or errors."""
    if value and len(value) >= 6:
        _SECRETS.add(value)


def mask(text: str) -> str:
    """Replace every registered secret in text."""
    for s in _SECRETS:
        if s in text:
            text = text.replace(s, MASK)
    return text


def quote(argv: Sequence[str]) -> str:
    """A shell-like, masked rendering of a command line for logs and dry runs."""
    import shlex

    return mask(" ".join(shlex.quote(a) for a in argv))


@dataclass
class Result:
    """What a finished command returned."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float


@dataclass
class Runner:
    """Runs commands; counts the time spent inside them (for KSI's overhead benchmark)."""

    default_timeout: float = 600.0
    extra_env: dict[str, str] = field(default_factory=dict)
    external_seconds: float = 0.0
    calls: int = 0
    _live: set = field(default_factory=set, repr=False)   # commands running now (any thread)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _stopper: Optional[int] = field(default=None, repr=False)  # the thread that stop_all()ed

    def which(self, program: str, env: Mapping[str, str] | None = None) -> str | None:
        path = (env or os.environ).get("PATH", os.defpath)
        return shutil.which(program, path=path)

    def _env(self, env: Mapping[str, str] | None) -> dict[str, str]:
        merged = dict(os.environ)
        merged.update(self.extra_env)
        if env:
            merged.update(env)
        return merged

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        input: str | None = None,  # noqa: A002 - mirrors subprocess
        cwd: str | None = None,
        check: bool = True,
        what: str = "",
        fix: str = "",
        code: Exit = Exit.INTERNAL,
        secrets: Iterable[str] = (),
    ) -> Result:
        """Run argv to completion and return its output.

        With check, a non-zero exit raises CommandFailed whose cause names `what`
        (or the program) and the tool's own last error line; `fix` and `code` go with it.
        """
        for s in secrets:
            add_secret(s)
        argv = [str(a) for a in argv]
        full_env = self._env(env)
        timeout = self.default_timeout if timeout is None else timeout
        log.debug("$ %s", quote(argv))
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env, cwd=cwd,
                text=True, start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise ToolMissing(
                f"'{argv[0]}' is not installed or not on PATH",
                f"install {argv[0]} on this node or add its directory to PATH (see 'ksi doctor')",
            ) from exc
        except PermissionError as exc:
            raise ToolMissing(f"'{argv[0]}' is not executable",
                              f"check the permissions of {argv[0]}") from exc
        self._register(proc)
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            stop_group(proc)
            out, err = proc.communicate()
            self._account(start)
            raise CommandTimeout(
                f"{what or argv[0]} did not finish within {timeout:.0f}s",
                fix or "retry; if it persists, raise the timeout in the KSI config",
                argv=argv, returncode=None, stdout=mask(out or ""), stderr=mask(err or ""),
            ) from exc
        except BaseException:
            stop_group(proc, grace=1.0)
            self._account(start)
            raise
        finally:
            with self._lock:
                self._live.discard(proc)
        seconds = self._account(start)
        res = Result(argv, proc.returncode, out or "", err or "", seconds)
        log.debug("  -> exit %d in %.2fs", res.returncode, seconds)
        if res.returncode != 0:
            log.debug("  stderr: %s", mask(res.stderr.strip())[-2000:])
            if check:
                tail = mask(last_line(res.stderr) or last_line(res.stdout))
                raise CommandFailed(
                    f"{what or argv[0]} failed (exit {res.returncode}): {tail}".rstrip(": "),
                    fix, code=code, argv=argv, returncode=res.returncode,
                    stdout=mask(res.stdout), stderr=mask(res.stderr),
                )
        return res

    def stop_all(self, grace: float = 1.0) -> int:
        """Stop every command still running (those of helper threads, e.g. a `liqoctl
        peer` when the run is being torn down): SIGTERM, SIGKILL after grace seconds.
        Their run() calls then fail in their threads, and so does any command another
        thread starts from now on (also one whose start raced this call); the calling
        thread's own commands (teardown) still run. Returns how many were stopped."""
        with self._lock:
            self._stopper = threading.get_ident()
            live = [p for p in self._live if p.poll() is None]
        for proc in live:
            log.debug("stopping the still running %s (pid %d)", quote(proc.args), proc.pid)
            stop_group(proc, grace)
        return len(live)

    def spawn(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
              cwd: str | None = None, replace_env: bool = False,
              foreground: bool = False, piped: bool = False,
              track: bool = False) -> subprocess.Popen:
        """Start a long-running child (the workload, a shell) in its own process group,
        its output going straight to ours. foreground=True keeps it in our session so that
        it keeps the controlling terminal (an interactive shell does its own job control).
        piped=True gives the caller its stdout and stderr as pipes (bytes); track=True
        counts it among the running commands that stop_all() stops (a `kubectl logs -f`),
        until forget(proc)."""
        argv = [str(a) for a in argv]
        full_env = dict(env or {}) if replace_env else self._env(env)
        log.debug("$ %s &", quote(argv))
        pipe = subprocess.PIPE if piped else None
        try:
            proc = subprocess.Popen(argv, env=full_env, cwd=cwd, stdout=pipe, stderr=pipe,
                                    stdin=subprocess.DEVNULL if piped else None,
                                    start_new_session=not foreground)
        except FileNotFoundError as exc:
            raise ToolMissing(f"'{argv[0]}' is not installed or not on PATH",
                              f"install {argv[0]}") from exc
        if track:
            self._register(proc)
        return proc

    def _register(self, proc: subprocess.Popen) -> None:
        """Count proc among the running commands; stop it at once when it was started by a
        helper thread after stop_all() (its Popen raced the snapshot, or came later)."""
        with self._lock:
            late = self._stopper is not None and threading.get_ident() != self._stopper
            if not late:
                self._live.add(proc)
        if late:
            log.debug("stopping %s (pid %d): started after stop_all()", quote(proc.args),
                      proc.pid)
            stop_group(proc, grace=1.0)

    def forget(self, proc: subprocess.Popen) -> None:
        """A tracked child (spawn(track=True)) that has ended: no longer ours to stop."""
        with self._lock:
            self._live.discard(proc)

    def _account(self, start: float) -> float:
        seconds = time.monotonic() - start
        with self._lock:  # helper threads run commands too
            self.external_seconds += seconds
            self.calls += 1
        return seconds


def signal_group(proc: subprocess.Popen, signum: int) -> None:
    """Send signum to the child's whole process group (it leads its own session)."""
    try:
        os.killpg(proc.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def stop_group(proc: subprocess.Popen, grace: float = 3.0) -> None:
    """SIGTERM the child's process group, then SIGKILL after grace seconds."""
    if proc.poll() is not None:
        signal_group(proc, signal.SIGKILL)  # stragglers of an exited leader
        return
    signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    signal_group(proc, signal.SIGKILL)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        log.warning("process %d did not die after SIGKILL", proc.pid)
