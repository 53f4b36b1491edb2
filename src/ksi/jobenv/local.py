"""A run without Slurm: a local identity, one node."""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

from ksi.jobenv.base import JobEnvironment

if TYPE_CHECKING:
    from ksi.runner import Runner


class LocalEnvironment(JobEnvironment):
    kind = "local"

    def __init__(self, environ: Mapping[str, str]) -> None:
        super().__init__(environ)
        self.job_id = "local"
        self.step_id = "0"
        self.node_id = 0
        self.proc_id = 0
        self.local_id = 0
        self.num_nodes = 1
        self.nodes = [self.hostname]

    def time_left(self, runner: Runner) -> float | None:
        return None
