"""Host-wide port reservations: an flock on <lock_dir>/port-<n>.lock held until teardown.

The lock directory is shared by every user on the node (mode 1777), so concurrent jobs of
any user never pick the same port; the kernel drops the lock when the holder dies (even by
SIGKILL), so a reservation cannot go stale. A port is only taken if it is also free for TCP
and UDP on IPv4 and IPv6 at that moment.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import random
import socket
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ksi.errors import Exit, KsiError

_PROBES = ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::"))
_TYPES = (socket.SOCK_STREAM, socket.SOCK_DGRAM)


def port_in_use(port: int) -> str | None:
    """Which protocol/family has port bound already ('tcp4', 'udp6', ...), None if free."""
    for family, addr in _PROBES:
        for kind in _TYPES:
            try:
                s = socket.socket(family, kind)
            except OSError:
                continue  # no IPv6 on this host
            try:
                if family == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.bind((addr, port))
            except OSError as exc:
                if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                    proto = "tcp" if kind == socket.SOCK_STREAM else "udp"
                    return f"{proto}{4 if family == socket.AF_INET else 6}"
            finally:
                s.close()
    return None


def ensure_lock_dir(path: Path) -> Path:
    """The shared reservation directory: created 1777 (sticky, like /tmp)."""
    try:
        os.mkdir(path, 0o1777)
        os.chmod(path, 0o1777)  # mkdir's mode is filtered by the umask
    except FileExistsError:
        pass
    except OSError as exc:
        raise KsiError(f"cannot create the port lock directory {path}: {exc.strerror}",
                       "set lock_dir (KSI_LOCK_DIR) to a node-local directory all users share",
                       code=Exit.STATE_UNSAFE) from exc
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise KsiError(f"port lock path {path} is not a directory", f"remove {path}",
                       code=Exit.STATE_UNSAFE)
    return path


@dataclass
class Reservation:
    """One held port. release() is idempotent."""

    port: int
    path: Path
    fd: int | None = field(default=None, repr=False)
    purpose: str = ""

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            st = os.fstat(self.fd)
            if st.st_uid == os.getuid():
                self.path.unlink(missing_ok=True)  # unlink while locked: see _try_lock
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None

    @property
    def held(self) -> bool:
        return self.fd is not None


def _try_lock(path: Path, info: dict) -> int | None:
    """Lock path exclusively without blocking; None if another holder has it."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except PermissionError:  # another user's file: a read-only fd can hold flock
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
        # The previous holder may have unlinked the file between our open and flock.
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        if os.fstat(fd).st_uid == os.getuid():
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        return fd


class PortBook:
    """Reserves ports in a shared lock directory."""

    def __init__(self, lock_dir: Path, owner: dict | None = None) -> None:
        self.lock_dir = lock_dir
        self.owner = owner or {}

    def _path(self, port: int) -> Path:
        return self.lock_dir / f"port-{port}.lock"

    def reserve(self, port: int, purpose: str) -> Reservation:
        """Reserve exactly this port or raise PORT_TAKEN."""
        ensure_lock_dir(self.lock_dir)
        fd = _try_lock(self._path(port), self._info(purpose))
        if fd is None:
            raise KsiError(f"port {port} ({purpose}) is reserved by another KSI run on this node",
                           f"unset {purpose} to let KSI pick a free port, or choose another",
                           code=Exit.PORT_TAKEN)
        busy = port_in_use(port)
        if busy:
            _unlock(fd, self._path(port))
            raise KsiError(f"port {port} ({purpose}) is already in use on this node ({busy})",
                           f"unset {purpose} to let KSI pick a free port, or choose another",
                           code=Exit.PORT_TAKEN)
        return Reservation(port, self._path(port), fd, purpose)

    def reserve_any(self, lo: int, hi: int, purpose: str,
                    exclude: Iterable[int] = ()) -> Reservation:
        """Reserve a free port in [lo, hi], starting at a random offset."""
        ensure_lock_dir(self.lock_dir)
        excluded = set(exclude)
        span = hi - lo + 1
        start = random.randrange(span)
        for i in range(span):
            port = lo + (start + i) % span
            if port in excluded:
                continue
            fd = _try_lock(self._path(port), self._info(purpose))
            if fd is None:
                continue
            if port_in_use(port):
                _unlock(fd, self._path(port))
                continue
            return Reservation(port, self._path(port), fd, purpose)
        raise KsiError(f"no free port for {purpose} in {lo}-{hi} on this node",
                       "end other runs on this node or widen the port range in the KSI config",
                       code=Exit.NO_FREE_PORT)

    def peek_free(self, lo: int, hi: int) -> int | None:
        """A port that looks free now, without reserving it (for --dry-run)."""
        for port in range(lo, hi + 1):
            p = self._path(port)
            if not p.exists() and not port_in_use(port):
                return port
        return None

    def held_by_others(self) -> list[int]:
        """Ports whose lock is currently held (by any process)."""
        out = []
        if not self.lock_dir.is_dir():
            return out
        for p in sorted(self.lock_dir.glob("port-*.lock")):
            try:
                fd = os.open(p, os.O_RDONLY)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                out.append(int(p.stem.split("-")[1]))
            finally:
                os.close(fd)
        return out

    def _info(self, purpose: str) -> dict:
        return dict(self.owner, purpose=purpose, pid=os.getpid(), uid=os.getuid(),
                    since=time.time())


def _unlock(fd: int, path: Path) -> None:
    try:
        if os.fstat(fd).st_uid == os.getuid():
            path.unlink(missing_ok=True)
    except OSError:
        pass
    os.close(fd)


def parse_port(text: str, lo: int, hi: int, purpose: str = "K8S_PORT") -> int:
    """Validate a user-given port: a number within [lo, hi]."""
    text = str(text).strip()
    if not text.isdigit():
        raise KsiError(f"{purpose}={text!r} is not a port number",
                       f"set {purpose} to a number in {lo}-{hi} or unset it",
                       code=Exit.PORT_NOT_A_NUMBER)
    port = int(text)
    if not lo <= port <= hi:
        raise KsiError(f"{purpose}={port} is outside the NodePort range {lo}-{hi}",
                       f"set {purpose} to a number in {lo}-{hi} or unset it",
                       code=Exit.PORT_OUT_OF_RANGE)
    return port
