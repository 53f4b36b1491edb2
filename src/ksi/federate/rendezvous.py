"""The nodes of a job meet in a private directory on the shared filesystem.

    SHARED_DIR/.ksi/<jobid>.<stepid>/      0700, the user's own
        hello-<i>.json      node i started: host, pid, nonce, its cluster (for a reaper)
        roster.json         the head saw every node's nonce: the directory really is shared
        hb-<i>              heartbeat: a counter rewritten every heartbeat_interval
        ready-<i>.json      node i's cluster is up with Liqo: address, ports, cluster id
        kubeconfig-<i>      member i's admin kubeconfig (0600), deleted at the end
        failed-<i>.json     node i failed: its one-line cause
        peered.json         the head peered with every member
        done.json           the head's workload ended: its exit code
        left-<i>            node i tore down

Every write is a temporary file renamed into place (readers never see half a file). Readers
re-open files on every poll and list the directory first: on NFS, opening the directory
revalidates its cached attributes (close-to-open), so new files show up without waiting for
the attribute cache to expire. Polls back off from 0.05 s to 1 s.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from ksi.errors import Exit

log = logging.getLogger("ksi.federate")

POLL_MIN = 0.05
POLL_MAX = 1.0
SHORT_POLL = 0.25   # waits that are short by nature: members getting ready, nodes leaving


def backoff(cap: float = POLL_MAX) -> Iterable[float]:
    """0.05, 0.1, 0.2, ... capped at 1 s (short waits that end a phase: a lower cap)."""
    d = POLL_MIN
    while True:
        yield d
        d = min(cap, d * 2)


class JobDir:
    """The job's rendezvous directory; file names are relative to it."""

    def __init__(self, shared: Path, job_id: str, step_id: str, restart: str = "") -> None:
        self.shared = Path(shared)
        name = f"{job_id}.{step_id}" + (f".r{restart}" if restart and restart != "0" else "")
        self.path = self.shared / ".ksi" / name

    def create(self) -> Path:
        """Create (or join) the directory; it must be ours, a real directory, and 0700."""
        from ksi.plan.paths import ensure_private_dir

        for d in (self.path.parent, self.path):
            ensure_private_dir(d, code=Exit.SHARED_DIR_UNUSABLE,
                               fix="pass a shared directory you can write, of your own")
        return self.path

    # ------------------------------------------------------------------ files
    def file(self, name: str) -> Path:
        return self.path / name

    def write_text(self, name: str, text: str) -> Path:
        """Atomic write (temporary file, fsync, rename), mode 0600."""
        from ksi.plan.paths import write_private

        final = self.file(name)
        write_private(final, text)
        return final

    def write(self, name: str, data: dict[str, Any]) -> Path:
        return self.write_text(name, json.dumps(data, sort_keys=True) + "\n")

    def copy_private(self, src: Path, name: str) -> Path:
        """Copy a secret file (a kubeconfig) in with mode 0600."""
        return self.write_text(name, Path(src).read_text())

    def listing(self) -> set[str]:
        """Names in the directory; listing it also revalidates NFS's cached view of it."""
        try:
            return set(os.listdir(self.path))
        except OSError:
            return set()

    def read(self, name: str) -> Optional[dict[str, Any]]:
        """The JSON message, re-read from the file; None if absent (or unreadable)."""
        try:
            with open(self.file(name), encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def read_text(self, name: str) -> Optional[str]:
        try:
            with open(self.file(name), encoding="utf-8") as fh:
                return fh.read()
        except OSError:
            return None

    def remove(self, name: str) -> None:
        try:
            os.unlink(self.file(name))
        except OSError:
            pass

    def remove_all(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        try:
            os.rmdir(self.path.parent)  # only if no other job uses it
        except OSError:
            pass


@dataclass
class Failure:
    """A node that failed (its own cause) or went silent (heartbeats stopped)."""

    node: int
    name: str
    cause: str
    code: int
    dead: bool = False


def node_name(nodes: list[str], i: int, hello: Optional[dict] = None) -> str:
    """Slurm's name of node i (SLURM_NODEID indexes the step's node list)."""
    if i < len(nodes):
        return nodes[i]
    if hello and hello.get("host"):
        return str(hello["host"])
    return f"node {i}"


@dataclass
class Watch:
    """A thread that writes this node's heartbeat and watches the others: failed markers
    and heartbeats that stopped. The first failure seen is reported to on_failure once."""

    jobdir: JobDir
    me: int
    num_nodes: int
    names: list[str]
    interval: float
    timeout: float
    on_failure: Callable[[Failure], None] = lambda f: None
    counter: int = 0
    failure: Optional[Failure] = None
    dead: set[int] = field(default_factory=set)
    left: set[int] = field(default_factory=set)
    ignore: set[int] = field(default_factory=set)    # nodes whose end is expected
    _seen: dict[int, tuple[str, float]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: Optional[threading.Thread] = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        self.beat()
        self._thread = threading.Thread(target=self._run, name="ksi-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def beat(self) -> None:
        if self._stop.is_set():
            return
        self.counter += 1
        try:
            self.jobdir.write_text(f"hb-{self.me}", f"{self.counter} {time.time():.3f}\n")
        except OSError as exc:
            log.debug("heartbeat write failed: %s", exc)

    def _run(self) -> None:
        next_beat = time.monotonic() + self.interval
        step = max(0.05, min(0.5, self.interval / 2))
        while not self._stop.wait(step):
            if time.monotonic() >= next_beat:
                self.beat()
                next_beat = time.monotonic() + self.interval
            try:
                self.scan()
            except Exception as exc:  # noqa: BLE001 - the watcher must not die silently
                log.debug("watch scan failed: %s", exc)

    def scan(self) -> None:
        """One look at the other nodes (also called directly by tests)."""
        names = self.jobdir.listing()
        now = time.monotonic()
        for i in range(self.num_nodes):
            if i == self.me:
                continue
            if f"left-{i}" in names:
                self.left.add(i)
            if f"failed-{i}.json" in names and i not in self.ignore:
                msg = self.jobdir.read(f"failed-{i}.json") or {}
                self._report(Failure(i, node_name(self.names, i, msg),
                                     str(msg.get("cause") or "failed"),
                                     int(msg.get("code") or Exit.MEMBER_FAILED)))
            if i in self.left or i in self.dead:
                continue
            beat = self.jobdir.read_text(f"hb-{i}")
            if beat is None:
                continue  # not started yet: the rendezvous waits have their own timeouts
            value = beat.split(" ", 1)[0]
            last = self._seen.get(i)
            if last is None or last[0] != value:
                self._seen[i] = (value, now)
            elif now - last[1] > self.timeout:
                self.dead.add(i)
                if i not in self.ignore:
                    self._report(Failure(
                        i, node_name(self.names, i), f"its KSI process stopped (no heartbeat "
                        f"for {self.timeout:.0f}s: killed, or the node is down)",
                        Exit.MEMBER_FAILED, dead=True))

    def _report(self, failure: Failure) -> None:
        with self._lock:
            if self.failure is not None:
                return
            self.failure = failure
        log.debug("node %s failed: %s", failure.name, failure.cause)
        self.on_failure(failure)


def new_nonce() -> str:
    return secrets.token_hex(8)


def wait_for(check: Callable[[], Any], timeout: float,
             abort: Callable[[], None] = lambda: None, cap: float = POLL_MAX) -> Any:
    """Poll check() with backoff (capped at cap seconds) until it returns something truthy
    (returned) or timeout (None). abort() is called on every round and may raise to end
    the wait."""
    deadline = time.monotonic() + timeout
    for delay in backoff(cap):
        abort()
        value = check()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        time.sleep(min(delay, left))
    return None  # pragma: no cover
