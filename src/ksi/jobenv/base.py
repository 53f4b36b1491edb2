"""The job environment interface (modelled on submitit's JobEnvironment: one class reads the
scheduler's variables; nothing else in KSI does)."""

from __future__ import annotations

import os
import pwd
import socket
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from ksi.runner import Runner


class JobEnvironment(ABC):
    """Identity of this run: job, step, node and task, and the job's nodes."""

    kind: str = "abstract"

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = dict(environ)
        self.hostname = socket.gethostname().split(".")[0]
        self.uid = os.getuid()
        try:
            self.user = pwd.getpwuid(self.uid).pw_name
        except KeyError:
            self.user = str(self.uid)

    job_id: str
    step_id: str
    node_id: int
    proc_id: int
    local_id: int
    num_nodes: int
    nodes: list[str]

    @property
    def is_slurm(self) -> bool:
        return self.kind == "slurm"

    @abstractmethod
    def time_left(self, runner: Runner) -> float | None:
        """Seconds until the job's time limit, None when unlimited or unknown."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "job_id": self.job_id, "step_id": self.step_id,
            "node_id": self.node_id, "proc_id": self.proc_id, "local_id": self.local_id,
            "num_nodes": self.num_nodes, "nodes": self.nodes, "hostname": self.hostname,
            "user": self.user, "uid": self.uid,
        }

    def describe(self) -> str:
        if not self.is_slurm:
            return f"local run on {self.hostname} as {self.user} (no Slurm)"
        return (f"slurm job {self.job_id} step {self.step_id} node {self.node_id}/"
                f"{self.num_nodes} task {self.proc_id} on {self.hostname} as {self.user}")
