"""The run record: `<state_dir>/run.json`, written when a run reserved its ports, read by
`ksi ls` and `ksi gc` (and copied into the shared registry). No secrets: paths and ports."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional

if TYPE_CHECKING:
    from ksi.plan.plan import Plan

RUN_RECORD = "run.json"


def build(plan: Plan, *, k8s_port: Optional[int], api_port: Optional[int],
          gateway_host_port: Optional[int]) -> dict[str, Any]:
    """The record of plan's run with the ports it holds."""
    p = plan
    return {
        "cluster": p.cluster, "context": p.context, "provider": p.provider,
        "job": p.env.as_dict(), "pid": os.getpid(), "host": p.env.hostname,
        "created": time.time(), "state_dir": str(p.state_dir),
        "kubeconfig": str(p.kubeconfig), "report": str(p.report_path),
        "ports": {"k8s": k8s_port, "api": api_port, "gateway": gateway_host_port,
                  "gateway_nodeport": p.gateway_nodeport},
        "lock_dir": str(p.settings.lock_dir), "systemd_scope": p.settings.systemd_scope,
        "mode": p.mode,
    }


def write(state_dir: Path, record: dict[str, Any], registry_dir: str = "") -> None:
    """The record in the state directory, and its shared copy (for 'ksi ls --all-nodes')."""
    from ksi.plan.paths import write_json

    write_json(state_dir / RUN_RECORD, record)
    if registry_dir:
        from ksi.state.registry import register

        register(registry_dir, record)


def paths(root: Path) -> Iterator[Path]:
    """The record files under a state root (one per run directory)."""
    if root.is_dir():
        yield from sorted(root.glob(f"*/{RUN_RECORD}"))


def read(path: Path) -> Optional[dict[str, Any]]:
    """A record, or None if unreadable."""
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None
