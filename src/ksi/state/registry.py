"""The optional shared registry (setting registry_dir): one JSON file per running cluster,
so that `ksi ls --all-nodes` sees the clusters of every node. No secrets go there (the run
record holds paths and ports only)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("ksi.registry")


def _dir(registry_dir: str) -> Path:
    p = Path(registry_dir)
    if not p.is_dir():
        p.mkdir(parents=True, exist_ok=True)
        try:
            os.chmod(p, 0o1777)  # shared by all users, like /tmp
        except OSError:
            pass
    return p


def entry_path(registry_dir: str, cluster: str) -> Path:
    return Path(registry_dir) / f"{cluster}.json"


def register(registry_dir: str, record: dict[str, Any]) -> None:
    """Write (replace) the cluster's entry; a failure only warns (the registry is advisory)."""
    from ksi.plan.paths import write_json

    try:
        _dir(registry_dir)
        write_json(entry_path(registry_dir, record["cluster"]), record)
    except OSError as exc:
        log.warning("could not write the registry entry in %s: %s", registry_dir, exc)


def unregister(registry_dir: str, cluster: str) -> None:
    try:
        entry_path(registry_dir, cluster).unlink(missing_ok=True)
    except OSError as exc:
        log.warning("could not remove the registry entry of %s: %s", cluster, exc)


def entries(registry_dir: str, uid: int | None = None) -> list[dict[str, Any]]:
    """Readable entries (of one uid when given)."""
    out = []
    d = Path(registry_dir)
    if not registry_dir or not d.is_dir():
        return out
    for p in sorted(d.glob("*.json")):
        try:
            rec = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if uid is not None and (rec.get("job") or {}).get("uid") != uid:
            continue
        out.append(rec)
    return out
