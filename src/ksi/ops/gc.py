"""Garbage collection of leftovers whose run has ended (`ksi gc`, the Slurm epilog).

For each of the user's clusters on this node whose run is gone (ksi pid dead, or no record
and the Slurm job ended), ksi.state.cleanup removes the cluster, stale port locks, the state
directory and the registry entry. Never touches a running run, another user's files, or a
kind cluster whose name is not a KSI name."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Optional

from ksi.state.cleanup import Action, remove_item, sweep_locks

if TYPE_CHECKING:
    from ksi.runner import Runner
    from ksi.settings import Settings

__all__ = ["Action", "collect", "remove_item", "sweep_locks", "user_state_roots"]


def collect(settings: Settings, runner: Runner, environ: Mapping[str, str], *,
            dry_run: bool = False, job: Optional[str] = None,
            containers: bool = True) -> tuple[list[Action], list[str]]:
    """The whole pass for the current user on this node: (actions, problems)."""
    from ksi.ops.inventory import inventory
    from ksi.state.inventory import state_root

    root = state_root(settings, environ)
    items, problems = inventory(settings, runner, environ, containers=containers)
    if settings.registry_dir:  # entries of this host whose run is gone
        from ksi.state.inventory import from_record, this_host
        from ksi.state.registry import entries

        known = {i.cluster for i in items}
        for rec in entries(settings.registry_dir, os.getuid()):
            if rec.get("cluster") not in known and rec.get("host") == this_host():
                it = from_record(rec, "registry")
                it.status, it.reason = "gone", "registry entry without a run"
                items.append(it)
    actions = []
    for it in items:
        if job is not None and it.job_id != str(job):
            continue
        if it.status == "other-node":
            continue
        if it.status != "gone":
            actions.append(Action(it.cluster, it.job_id or "?", it.reason or it.status,
                                  kept=True))
            continue
        actions.append(remove_item(it, settings, runner, root, dry_run=dry_run))
    if job is None and containers:
        handled = {int(v) for it in items if it.status == "gone"
                   for v in (it.ports or {}).values() if isinstance(v, int)}
        stale = [p for p in sweep_locks(settings.lock_dir, os.getuid(), dry_run)
                 if p not in handled]
        if stale:
            actions.append(Action("-", "-", "stale port locks",
                                  removed=["port locks " + ",".join(map(str, stale))]))
    return actions, problems


# ------------------------------------------------------------------------ all users (root)
def user_state_roots(settings: Settings) -> dict[int, list[Path]]:
    """uid -> state roots holding KSI records on this node (root's view)."""
    from ksi.state import record as run_record

    cands = [Path(p) for p in _glob("/run/user/*/ksi")] + [Path(p) for p in _glob("/tmp/ksi-*")]
    if settings.state_dir:
        cands.append(Path(settings.state_dir))
    out: dict[int, list[Path]] = {}
    for root in cands:
        if not root.is_dir() or root.name == "ksi-locks":
            continue
        for rec_path in run_record.paths(root):
            rec = run_record.read(rec_path)
            try:
                uid = os.stat(rec_path).st_uid
            except OSError:
                continue
            if rec is None:
                continue
            uid = int((rec.get("job") or {}).get("uid", uid))
            out.setdefault(uid, [])
            if root not in out[uid]:
                out[uid].append(root)
    return out


def _glob(pattern: str) -> list[str]:
    import glob

    return glob.glob(pattern)
