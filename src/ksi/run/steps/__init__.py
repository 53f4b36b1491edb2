"""The steps of one node's run, one module each (the phase line they print is their name)."""

from __future__ import annotations

from typing import Optional

from ksi.run.step import Step
from ksi.run.steps.access import Access
from ksi.run.steps.gpus import Gpus, GpuSetup
from ksi.run.steps.job import Job
from ksi.run.steps.plan import Plan
from ksi.run.steps.preflight import Preflight
from ksi.run.steps.provision import Provision
from ksi.run.steps.ready import Ready
from ksi.run.steps.reserve import Reserve
from ksi.run.steps.warmstart import WarmStart
from ksi.run.steps.workload import Workload

__all__ = ["Access", "GpuSetup", "Gpus", "Job", "Plan", "Preflight", "Provision", "Ready",
           "Reserve", "WarmStart", "Workload", "node_steps"]


def node_steps(workload: Optional[Step] = None) -> list[Step]:
    """One node's run: job -> plan -> preflight -> gpus -> reserve -> provision (warm or cold)
    -> ready -> gpu-setup -> access -> workload (teardown: the undo of those that ran)."""
    return [Job(), Plan(), Preflight(), Gpus(), Reserve(), WarmStart(), Ready(), GpuSetup(),
            Access(), workload or Workload()]
