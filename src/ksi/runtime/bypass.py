"""bypass4netns for kind's nerdctl nodes, without an admin-installed wrapper.

Where bypass4netnsd runs for the user, KSI writes a per-run shim directory (in its private
state dir) put first on PATH for kind: an executable `nerdctl` that adds
`--annotation nerdctl/bypass4netns=true` (nerdctl >= 2.0) or `--label nerdctl/bypass4netns=true`
(nerdctl 1.x) to `nerdctl run` (and `nerdctl container run`) and execs the real nerdctl —
resolved to an absolute path before the shim exists — unchanged for everything else. Without
it the node's traffic goes through slirp4netns, which KSI reports.

Which flag (containerd/nerdctl sources): 1.x has no `run --annotation` ("unknown flag") and
reads the label (pkg/labels.Bypass4netns). `run --annotation` came in v2.0.0-beta.3 (commit
f42ab2ff) and moved the key to pkg/annotations; 2.x still accepts the label but only warns
"Label ... is deprecated, use an annotation instead" and sets up bypass4netns' seccomp
notification from the annotations alone, so 2.x needs the annotation.
"""

from __future__ import annotations

import os
import re
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
# Written by KSI for one run: adds the bypass4netns flag to `nerdctl run` only.
real={real}
case "$1" in
  run) shift; exec "$real" run {flag} {annotation} "$@" ;;
  container) if [ "$2" = run ]; then shift 2
       exec "$real" container run {flag} {annotation} "$@"; fi ;;
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


def run_flag(client_version: str) -> str:
    """The `nerdctl run` flag carrying nerdctl/bypass4netns=true for this client version:
    --annotation from 2.0.0 (2.0.0-beta.3 on), --label before and when the version is unknown
    (1.x rejects --annotation outright; 2.x only warns about the label)."""
    m = re.match(r"v?(\d+)\.(\d+)\.(\d+)(?:-beta\.(\d+))?", client_version.strip())
    if not m:
        return "--label"
    major, minor, patch, beta = m.groups()
    if int(major) < 2:
        return "--label"
    if (int(major), int(minor), int(patch)) == (2, 0, 0) and beta is not None and int(beta) < 3:
        return "--label"
    return "--annotation"


def write_shim(directory: Path, real_nerdctl: str, flag: str = "--annotation") -> Path:
    """Create directory/nerdctl (0700) calling real_nerdctl (absolute path), adding
    `flag nerdctl/bypass4netns=true` (flag from run_flag) to `run`."""
    if flag not in ("--annotation", "--label"):
        raise KsiError(f"bypass4netns flag {flag!r} is neither --annotation nor --label",
                       "report this as a KSI bug", code=Exit.INTERNAL)
    if not os.path.isabs(real_nerdctl):
        raise KsiError(f"real nerdctl path {real_nerdctl!r} is not absolute",
                       "report this as a KSI bug", code=Exit.INTERNAL)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / "nerdctl"
    tmp = directory / ".nerdctl.tmp"
    tmp.write_text(SHIM.format(real=shlex.quote(real_nerdctl), flag=flag,
                               annotation=shlex.quote(ANNOTATION)))
    os.chmod(tmp, 0o700)
    os.replace(tmp, path)
    return path
