"""The processes of one user, read from /proc (proc_root: a fake tree in tests)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Collection, Iterator


def user_processes(uid: int, proc_root: str = "/proc",
                   spare: Collection[int] = ()) -> Iterator[Path]:
    """<proc_root>/<pid> of each process of uid, except the pids in spare. Processes that
    end while listed are skipped; an unreadable proc_root raises OSError."""
    for entry in Path(proc_root).iterdir():
        if not entry.name.isdigit() or int(entry.name) in spare:
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
        except OSError:
            continue
        yield entry


def ancestors(proc_root: str = "/proc") -> set[int]:
    """This process's pid and its ancestors' (from the ppid field of /proc/<pid>/stat)."""
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            stat = (Path(proc_root) / str(pid) / "stat").read_text()
            pid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids
