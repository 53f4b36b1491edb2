"""What KSI has on this node for the current user: run records in the private state directory
and kind node containers in the user's runtime, each with the state of its run.

A run whose record is on this host is alive exactly while its ksi process lives (the record
carries that pid; a reused pid only counts when it is a ksi process). Containers without a
record are judged by their Slurm job (squeue, one call) — or, for local runs, by whether any
ksi process of the user is running here."""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional

from ksi.errors import KsiError
from ksi.procfs import user_processes
from ksi.state import record as run_record

if TYPE_CHECKING:
    from ksi.runner import Runner
    from ksi.settings import Settings

log = logging.getLogger("ksi.inventory")

# squeue states in which a job's processes may still run (COMPLETING = epilog time: gone)
ALIVE_STATES = frozenset({"PENDING", "RUNNING", "SUSPENDED", "CONFIGURING", "RESIZING",
                          "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "STOPPED", "SIGNALING"})


@dataclass
class Item:
    cluster: str
    job_id: str = ""
    host: str = ""
    user: str = ""
    uid: Optional[int] = None
    pid: Optional[int] = None
    created: Optional[float] = None
    provider: str = ""
    ports: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    record_path: Optional[Path] = None
    containers: list[str] = field(default_factory=list)
    source: str = "state"          # state | runtime | registry
    job_state: str = ""            # squeue's state, "gone", "local" or "unknown"
    status: str = "unknown"        # running | gone | unknown | other-node
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster, "job": self.job_id, "job_state": self.job_state,
            "status": self.status, "reason": self.reason, "node": self.host,
            "user": self.user, "pid": self.pid, "created": self.created,
            "age_seconds": round(time.time() - self.created) if self.created else None,
            "ports": self.ports, "containers": self.containers, "source": self.source,
            "provider": self.provider,
            "state_dir": str(self.record_path.parent) if self.record_path else None,
        }


def this_host() -> str:
    return socket.gethostname().split(".")[0]


def state_root(settings: Settings, environ: Mapping[str, str]) -> Path:
    from ksi.plan.paths import default_state_root

    return Path(settings.state_dir) if settings.state_dir else default_state_root(environ)


def ksi_pid_alive(pid: Optional[int]) -> bool:
    """pid runs and is a ksi process (pid reuse by something else does not count)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return True  # no /proc: trust kill(0)
    return b"ksi" in cmd


def other_ksi_running(uid: int) -> bool:
    """Another ksi process of uid runs on this host (not this one, nor its parents)."""
    try:
        for e in user_processes(uid, spare={os.getpid(), os.getppid()}):
            try:
                argv = (e / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            words = [os.path.basename(a) for a in argv[:3]]
            is_ksi = b"ksi" in words or (b"-m" in argv[:3] and b"ksi" in argv[:4])
            if is_ksi and (b"run" in argv or b"shell" in argv):
                return True
    except OSError:
        return True  # cannot tell: be careful
    return False


def read_records(root: Path, uid: int) -> list[Item]:
    out = []
    for path in run_record.paths(root):
        rec = run_record.read(path)
        if rec is None:
            continue
        job = rec.get("job") or {}
        if job.get("uid", uid) != uid or not rec.get("cluster"):
            continue
        out.append(from_record(rec, "state", path))
    return out


def from_record(rec: dict[str, Any], source: str, path: Optional[Path] = None) -> Item:
    job = rec.get("job") or {}
    return Item(cluster=rec["cluster"], job_id=str(job.get("job_id", "")),
                host=rec.get("host", job.get("hostname", "")), user=job.get("user", ""),
                uid=job.get("uid"), pid=rec.get("pid"), created=rec.get("created"),
                provider=rec.get("provider", ""), ports=rec.get("ports") or {}, record=rec,
                record_path=path, source=source)


def job_states(job_ids: list[str], runner: Runner) -> Optional[dict[str, str]]:
    """squeue state per Slurm job id ('gone' when squeue no longer knows it) with one call;
    None when squeue cannot be asked."""
    ids = sorted({j for j in job_ids if j.isdigit()})
    if not ids:
        return {}
    if not runner.which("squeue"):
        return None
    try:
        res = runner.run(["squeue", "-h", "-j", ",".join(ids), "-o", "%i %T"], timeout=30,
                         check=False)
    except KsiError:
        return None
    states = dict.fromkeys(ids, "gone")
    if res.returncode != 0:
        if "Invalid job id" not in res.stderr:
            log.info("squeue failed: %s", res.stderr.strip()[-200:])
            return None
        # every listed job is unknown to slurmctld (or old Slurm rejects the list): per id
        if len(ids) > 1:
            for j in ids:
                one = job_states([j], runner)
                if one is None:
                    return None
                states.update(one)
        return states
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            states[parts[0].split("_")[0]] = parts[1]
    return states


def classify(items: list[Item], runner: Runner, host: str, uid: int, *,
             all_jobs: bool = False) -> None:
    """Set status/job_state/reason of each item (at most one squeue call; none when every
    item has a record on this host, unless all_jobs asks for every job's state)."""
    need_squeue = [i.job_id for i in items if i.job_id.isdigit()
                   and (all_jobs or not (i.host == host and i.record_path is not None))]
    states = job_states(need_squeue, runner) if need_squeue else {}
    other_local: Optional[bool] = None
    for it in items:
        st = (states or {}).get(it.job_id, "") if it.job_id.isdigit() else ""
        it.job_state = st or ("local" if it.job_id == "local" else "")
        if it.host and it.host != host:
            it.status = "other-node"
            if it.job_id.isdigit():
                it.status = "running" if st in ALIVE_STATES else (
                    "gone" if st else "other-node")
            it.reason = f"on {it.host}"
            continue
        if it.record_path is not None:
            if ksi_pid_alive(it.pid):
                it.status, it.reason = "running", f"ksi pid {it.pid} runs"
            else:
                it.status, it.reason = "gone", f"ksi pid {it.pid} is gone"
            continue
        # a node container without a record on this host
        if it.job_id.isdigit():
            if states is None:
                it.status, it.reason = "unknown", "no record; squeue unavailable"
            elif st in ALIVE_STATES:
                it.status, it.reason = "running", f"job {it.job_id} {st}"
            else:
                it.status, it.reason = "gone", f"no record; job {it.job_id} {st or 'gone'}"
        else:
            if other_local is None:
                other_local = other_ksi_running(uid)
            if other_local:
                it.status, it.reason = "unknown", "no record; another ksi runs here"
            else:
                it.status, it.reason = "gone", "no record; no ksi process runs here"
