"""bypass4netns for kind's nerdctl nodes, without an admin-installed wrapper.

Where bypass4netnsd runs for the user, KSI writes a per-run shim directory (in its private
state dir) put first on PATH for kind: an executable `nerdctl` that adds
`--annotation nerdctl/bypass4netns=true` to `nerdctl run` (and `nerdctl container run`) and
execs the real nerdctl — resolved to an absolute path before the shim exists — unchanged for
everything else. Without it the node's traffic goes through slirp4netns, which KSI reports.
"""

from __future__ import annotations

import os
import shlex
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

from ksi.errors import Exit, KsiError
from ksi.procfs import user_processes

ANNOTATION = "nerdctl/bypass4netns=true"
SOCKET = "bypass4netnsd.sock"
DAEMON = "bypass4netnsd"
SLIRP_WARNING = ("pod network via slirp4netns: expect ~93 % lower throughput; ask your admin "
                 "to run bypass4netnsd")

SHIM = """#!/bin/sh
# Written by KSI for one run: adds the bypass4netns annotation to `nerdctl run` only.
real={real}
case "$1" in
  run) shift; exec "$real" run --annotation {annotation} "$@" ;;
  container) if [ "$2" = run ]; then shift 2
       exec "$real" container run --annotation {annotation} "$@"; fi ;;
esac
exec "$real" "$@"
"""


@dataclass
class Decision:
    use: bool
    reason: str


def daemon_running(environ: Mapping[str, str], proc_root: str = "/proc",
                   uid: Optional[int] = None) -> str:
    """How bypass4netnsd was found ('' when it was not): its socket, or a process of ours."""
    xdg = environ.get("XDG_RUNTIME_DIR", "")
    if xdg:
        sock = Path(xdg) / SOCKET
        try:
            if stat.S_ISSOCK(sock.stat().st_mode):
                return f"socket {sock}"
        except OSError:
            pass
    try:
        for e in user_processes(os.getuid() if uid is None else uid, proc_root):
            try:
                if (e / "comm").read_text().strip() == DAEMON:
                    return f"process {e.name}"
            except OSError:
                continue
    except OSError:
        pass
    return ""


def decide(setting: str, provider: str, environ: Mapping[str, str],
           proc_root: str = "/proc") -> Decision:
    """auto: use it where bypass4netnsd runs; on: always (the user knows better); off: never."""
    if provider != "nerdctl":
        return Decision(False, f"bypass4netns applies to nerdctl only, not {provider}")
    if setting == "off":
        return Decision(False, "bypass4netns=off")
    found = daemon_running(environ, proc_root)
    if setting == "on":
        return Decision(True, f"bypass4netns=on ({found or 'bypass4netnsd not detected'})")
    if found:
        return Decision(True, f"bypass4netnsd found ({found})")
    return Decision(False, "bypass4netnsd not running")


def write_shim(directory: Path, real_nerdctl: str) -> Path:
    """Create directory/nerdctl (0700) calling real_nerdctl (absolute path)."""
    if not os.path.isabs(real_nerdctl):
        raise KsiError(f"real nerdctl path {real_nerdctl!r} is not absolute",
                       "report this as a KSI bug", code=Exit.INTERNAL)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / "nerdctl"
    tmp = directory / ".nerdctl.tmp"
    tmp.write_text(SHIM.format(real=shlex.quote(real_nerdctl),
                               annotation=shlex.quote(ANNOTATION)))
    os.chmod(tmp, 0o700)
    os.replace(tmp, path)
    return path
