"""Removing what a run that ended left behind (the quick pass of `ksi run`; `ksi gc` and the
Slurm epilog build on it): its cluster (ksi.provision.delete), stale port lock files (a held
flock dies with its process; only the file can be left), the state directory and the
registry entry. Never touches a running run, another user's files, or a kind cluster whose
name is not a KSI name."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from ksi.errors import KsiError

if TYPE_CHECKING:
    from ksi.plan.plan import Plan
    from ksi.runner import Runner
    from ksi.settings import Settings
    from ksi.state.inventory import Item

log = logging.getLogger("ksi.gc")


@dataclass
class Action:
    cluster: str
    job: str
    reason: str
    removed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    kept: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "job": self.job, "reason": self.reason,
                "kept": self.kept, "removed": self.removed, "problems": self.problems}

    def line(self, dry_run: bool) -> str:
        if self.kept:
            return f"kept {self.cluster} (job {self.job}: {self.reason})"
        verb = "would remove" if dry_run else "removed"
        what = ", ".join(self.removed) or "nothing"
        text = f"{verb} {self.cluster} (job {self.job}: {self.reason}): {what}"
        if self.problems:
            text += " -- NOT removed: " + "; ".join(self.problems)
        return text


def _lock_unheld_and_remove(path: Path, uid: int, dry_run: bool) -> bool:
    """Remove a port lock file nobody holds (only our own files). True if (would be) removed."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if st.st_uid != uid:
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # held: a live run owns the port
        if os.fstat(fd).st_ino != st.st_ino:
            return False
        if not dry_run:
            path.unlink(missing_ok=True)  # unlinked while locked (see ports._try_lock)
        return True
    finally:
        os.close(fd)


def sweep_locks(lock_dir: str, uid: int, dry_run: bool = False,
                ports: Optional[list[int]] = None) -> list[int]:
    """Stale (unheld) lock files of uid: of the given ports, or all of them."""
    d = Path(lock_dir)
    if not d.is_dir():
        return []
    paths = ([d / f"port-{p}.lock" for p in ports] if ports is not None
             else sorted(d.glob("port-*.lock")))
    out = []
    for p in paths:
        if _lock_unheld_and_remove(p, uid, dry_run):
            try:
                out.append(int(p.stem.split("-", 1)[1]))
            except ValueError:
                pass
    return out


def _safe_state_dir(item: Item, root: Path) -> Optional[Path]:
    if item.record_path is None:
        return None
    d = item.record_path.parent
    try:
        if d.resolve().parent != root.resolve() or d.name != item.cluster:
            return None
    except OSError:
        return None
    return d


def remove_item(item: Item, settings: Settings, runner: Runner, root: Path, *,
                dry_run: bool) -> Action:
    """Delete one gone run's cluster, containers, stale locks, state and registry entry."""
    from ksi.provision import providers
    from ksi.provision.delete import delete_cluster
    from ksi.provision.kind import Kind

    act = Action(item.cluster, item.job_id or "?", item.reason)
    rec = item.record
    try:
        prov = providers.get(item.provider or settings.provider, runner)
    except KsiError as exc:
        act.problems.append(exc.cause)
        return act
    state_dir = _safe_state_dir(item, root)
    kubeconfig: Optional[Path] = None
    if state_dir is not None and (state_dir / "kubeconfig").exists():
        kubeconfig = state_dir / "kubeconfig"
    elif root.is_dir():
        kubeconfig = root / ".gc-kubeconfig"  # never merge into ~/.kube/config
    if runner.which(prov.binary):
        try:
            present = item.containers or prov.node_containers(item.cluster)
        except KsiError as exc:
            act.problems.append(exc.cause)
            present = []
        if present:
            act.removed.append(f"cluster ({len(present)} node container(s))")
            if not dry_run:
                kind = Kind(runner, prov, systemd_scope=bool(rec.get("systemd_scope")))
                act.problems += delete_cluster(prov, kind, item.cluster, kubeconfig,
                                               nodes=present)
    elif item.containers or rec:
        act.problems.append(f"'{prov.binary}' is not on PATH: cannot check node containers")
    ports = [int(v) for v in (item.ports or {}).values() if isinstance(v, int)]
    lock_dir = rec.get("lock_dir") or settings.lock_dir
    if ports:
        freed = sweep_locks(lock_dir, os.getuid(), dry_run, ports)
        if freed:
            act.removed.append("port locks " + ",".join(str(p) for p in freed))
    if act.problems:
        return act  # keep the record: a later gc retries
    if state_dir is not None and state_dir.exists():
        act.removed.append(f"state {state_dir}")
        if not dry_run:
            shutil.rmtree(state_dir, ignore_errors=True)
            if state_dir.exists():
                act.problems.append(f"could not remove {state_dir}")
    if settings.registry_dir:
        from ksi.state.registry import entry_path, unregister

        if entry_path(settings.registry_dir, item.cluster).exists():
            act.removed.append("registry entry")
            if not dry_run:
                unregister(settings.registry_dir, item.cluster)
    return act


def quick_pass(plan: Plan, runner: Runner) -> str:
    """The cheap pass `ksi run` does on start: only state-dir records of this host whose
    ksi process is gone (no squeue call, no container listing unless something is gone)."""
    from ksi.state.inventory import read_records

    settings = plan.settings
    root = plan.state_root
    try:
        items = read_records(root, os.getuid())
        from ksi.state.inventory import classify, this_host

        items = [i for i in items if i.host == this_host() and i.cluster != plan.cluster]
        if not items:
            return ""
        classify(items, runner, this_host(), os.getuid())
        removed = []
        for it in items:
            if it.status != "gone":
                continue
            act = remove_item(it, settings, runner, root, dry_run=False)
            if act.problems:
                log.info("gc: %s", act.line(False))
            else:
                removed.append(it.cluster)
    except (KsiError, OSError) as exc:  # the pass must never stop a run
        log.info("gc on start skipped: %s", exc)
        return ""
    return f"gc removed {len(removed)} leftover(s): {', '.join(removed)}" if removed else ""
