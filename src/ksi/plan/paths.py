"""Private, node-local state: 0700 directories owned by the user, 0600 files."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path
from typing import Any, Mapping

from ksi.errors import Exit, KsiError


def default_state_root(environ: Mapping[str, str]) -> Path:
    """$XDG_RUNTIME_DIR/ksi when that is the user's own directory, else /tmp/ksi-$UID."""
    xdg = environ.get("XDG_RUNTIME_DIR", "")
    if xdg:
        try:
            st = os.stat(xdg)
            if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid():
                return Path(xdg) / "ksi"
        except OSError:
            pass
    return Path(f"/tmp/ksi-{os.getuid()}")


def ensure_private_dir(path: Path, *, code: Exit = Exit.STATE_UNSAFE,
                       fix: str = "set KSI_STATE_DIR to a directory of your own") -> Path:
    """Create path (mode 0700) or check an existing one is ours, not a symlink, and private.
    A missing parent is created too (it may have been removed by another job meanwhile)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise KsiError(f"cannot create {path}: {exc.strerror}", fix, code=code) from exc
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise KsiError(f"{path} is not a directory (a symlink or file is in the way)",
                       f"remove {path}, or: {fix}", code=code)
    if st.st_uid != os.getuid():
        raise KsiError(f"{path} belongs to uid {st.st_uid}, not to you", fix, code=code)
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def write_private(path: Path, text: str) -> None:
    """Write a file atomically (temporary file, fsync, rename) with mode 0600; safe from
    several threads of one process (the multi-node heartbeat writes beside the main thread)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    write_private(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
