"""The Slurm job environment: the only place in KSI that reads SLURM_* variables."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Mapping

from ksi.errors import KsiError
from ksi.jobenv.base import JobEnvironment

if TYPE_CHECKING:
    from ksi.runner import Runner


def _int(environ: Mapping[str, str], *names: str, default: int = 0) -> int:
    for n in names:
        v = environ.get(n, "").strip()
        if v.isdigit():
            return int(v)
    return default


def expand_nodelist(nodelist: str) -> list[str]:
    """node[1-3],gpu01 -> [node1, node2, node3, gpu01] (python-hostlist)."""
    if not nodelist:
        return []
    import hostlist

    return list(hostlist.expand_hostlist(nodelist))


def parse_time_left(text: str) -> float | None:
    """Parse squeue's %L ('1-02:03:04', '02:03:04', '03:04', 'UNLIMITED')."""
    text = text.strip()
    if not text or text.upper() in {"UNLIMITED", "NOT_SET", "INVALID", "N/A"}:
        return None
    m = re.fullmatch(r"(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)", text)
    if not m:
        return None
    days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


class SlurmEnvironment(JobEnvironment):
    """Inside `srun` (a step: SLURM_STEP_ID set) or a batch script (step 'batch', one node)."""

    kind = "slurm"

    @staticmethod
    def applies(environ: Mapping[str, str]) -> bool:
        return bool(environ.get("SLURM_JOB_ID") or environ.get("SLURM_JOBID"))

    def __init__(self, environ: Mapping[str, str]) -> None:
        super().__init__(environ)
        e = self.environ
        self.job_id = e.get("SLURM_JOB_ID") or e.get("SLURM_JOBID", "")
        if not self.job_id.isdigit():
            raise KsiError(f"SLURM_JOB_ID={self.job_id!r} is not a job id",
                           "run ksi inside a Slurm job or unset the SLURM_* variables")
        step = e.get("SLURM_STEP_ID") or e.get("SLURM_STEPID")
        in_step = step is not None and step != ""
        self.step_id = step if in_step else "batch"
        self.proc_id = _int(e, "SLURM_PROCID")
        self.local_id = _int(e, "SLURM_LOCALID")
        if in_step:
            self.node_id = _int(e, "SLURM_NODEID")
            self.num_nodes = _int(e, "SLURM_STEP_NUM_NODES", "SLURM_NNODES",
                                  "SLURM_JOB_NUM_NODES", default=1)
            nodelist = e.get("SLURM_STEP_NODELIST") or e.get("SLURM_JOB_NODELIST") \
                or e.get("SLURM_NODELIST", "")
        else:  # the batch script runs on the first node only
            self.node_id = 0
            self.num_nodes = 1
            nodelist = e.get("SLURMD_NODENAME", self.hostname)
        self.nodes = expand_nodelist(nodelist) or [self.hostname]
        self.node_name = e.get("SLURMD_NODENAME", self.hostname)

    def time_left(self, runner: Runner) -> float | None:
        """Remaining wall time from squeue (None when unlimited or squeue is unavailable)."""
        try:
            res = runner.run(["squeue", "-h", "-j", self.job_id, "-o", "%L"], timeout=8,
                             check=False)
        except KsiError:
            return None
        if res.returncode != 0:
            return None
        first = (res.stdout.strip().splitlines() or [""])[0]
        return parse_time_left(first)
