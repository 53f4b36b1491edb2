"""Cluster names: unique per job, step, task and run; valid for kind; traceable to the job."""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from ksi.jobenv import JobEnvironment

NAME_RE = re.compile(r"^[a-z0-9.-]+$")  # kind's rule (pkg/cluster/internal/create)
MAX_LEN = 50  # kind warns above this: "<name>-control-plane" is also the hostname
PREFIX = "ksi"
_PARSE = re.compile(
    r"^ksi-(?:(?P<job>\d+)-[a-z0-9]+-\d+-[0-9a-f]{4}|(?P<local>local)-[0-9a-f]{6})$")


def _clean(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower()) or "x"


def cluster_name(env: JobEnvironment, *, suffix: Optional[str] = None) -> str:
    """ksi-<job>-<step>-<task>-<rand4> in Slurm, ksi-local-<rand6> without."""
    if env.is_slurm:
        step = "b" if env.step_id == "batch" else _clean(env.step_id)
        name = f"{PREFIX}-{env.job_id}-{step}-{env.proc_id}-{suffix or secrets.token_hex(2)}"
    else:
        name = f"{PREFIX}-local-{suffix or secrets.token_hex(3)}"
    assert NAME_RE.match(name) and len(name) <= MAX_LEN, name
    return name


def context_name(cluster: str) -> str:
    """kind's kubeconfig context for a cluster: K8S_CLUSTER_NAME."""
    return f"kind-{cluster}"


def job_of(cluster: str) -> Optional[str]:
    """The Slurm job id a KSI cluster name carries ('local' without Slurm), else None."""
    m = _PARSE.match(cluster)
    return (m.group("job") or m.group("local")) if m else None
