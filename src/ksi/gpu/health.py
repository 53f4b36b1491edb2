"""After the workload: did one of the job's GPUs disappear during the run (an Xid error)?

Two signals, both read before the cluster is deleted:
- the device plugin's health check (k8s-device-plugin watches NVML's critical Xid events
  and marks the device Unhealthy): the kind node's allocatable `nvidia.com/gpu` drops below
  the number of GPUs passed;
- nvidia-smi in the job step: a GPU that fell off the bus (Xid 79) is no longer listed.

A pod that was using such a GPU fails on its own (its CUDA calls return errors); this module
only names the reason, so that KSI's output says why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from ksi.errors import GpuUnavailable
from ksi.gpu.discovery import QUERY_ARGV, Discovery, parse_query, run_nvidia_smi
from ksi.gpu.node import PLUGIN_NAME, RESOURCE

if TYPE_CHECKING:
    from ksi.runner import Runner

VIRTUAL_NODE = ("liqo.io/type", "virtual-node")


@dataclass
class Health:
    """What the end-of-run check found."""

    passed: int = 0
    allocatable: Optional[int] = None        # summed over the kind nodes (None: unknown)
    gone: list[str] = field(default_factory=list)   # UUIDs nvidia-smi no longer lists
    smi_error: str = ""

    @property
    def unhealthy(self) -> int:
        if self.allocatable is None:
            return 0
        return max(0, self.passed - self.allocatable)

    @property
    def lost(self) -> bool:
        return bool(self.gone or self.unhealthy or self.smi_error)

    def line(self) -> str:
        """One line naming what was lost and where to look ('' when nothing was)."""
        if not self.lost:
            return ""
        parts = []
        if self.gone:
            parts.append(f"{', '.join(self.gone)} no longer listed by nvidia-smi on this node")
        if self.smi_error:
            parts.append(f"nvidia-smi fails now ({self.smi_error})")
        if self.allocatable is not None and self.unhealthy:
            parts.append(f"the device plugin reports {self.allocatable} of {self.passed} "
                         f"{RESOURCE} allocatable ({self.unhealthy} marked unhealthy)")
        return ("GPU lost during the run: " + "; ".join(parts) + ". Pods using it fail: an "
                "Xid error (the node's kernel log: 'NVRM: Xid'); tell the site admin, "
                f"see kubectl -n kube-system logs ds/{PLUGIN_NAME}")


def allocatable(nodes_json: str) -> Optional[int]:
    """The kind nodes' allocatable nvidia.com/gpu, summed (Liqo virtual nodes left out)."""
    try:
        items = json.loads(nodes_json or "{}").get("items") or []
    except (ValueError, AttributeError):
        return None
    total, seen = 0, False
    for n in items:
        labels = (n.get("metadata") or {}).get("labels") or {}
        if labels.get(VIRTUAL_NODE[0]) == VIRTUAL_NODE[1]:
            continue
        value = ((n.get("status") or {}).get("allocatable") or {}).get(RESOURCE)
        if value is not None and str(value).isdigit():
            total, seen = total + int(value), True
    return total if seen else 0 if items else None


def check(d: Discovery, kubectl: Any, runner: Runner) -> Health:
    """Compare the GPUs passed with what the node and the device plugin show now."""
    h = Health(passed=len(d.job))
    res = kubectl.run("get", "nodes", "-o", "json", timeout=30, check=False)
    if res.returncode == 0:
        h.allocatable = allocatable(res.stdout)
    try:
        gpus, _driver = parse_query(run_nvidia_smi(runner, QUERY_ARGV))
    except GpuUnavailable as exc:
        h.smi_error = exc.cause
        return h
    now = {g.uuid for g in gpus}
    h.gone = [g.uuid for g in d.job if (g.parent or g.uuid) not in now]
    return h
