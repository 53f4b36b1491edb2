"""The facts of one run, found while it runs (the plan was decided before): ports held, the
job's time left, the token's lifetime, the API URL, create attempts. The report reads them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from ksi.gpu.discovery import Discovery
    from ksi.plan.ports import Reservation


@dataclass
class RunState:
    started: float = field(default_factory=time.monotonic)
    time_left: Optional[float] = None          # seconds left in the job at the preflight
    token_seconds: Optional[int] = None
    k8s_port: Optional[int] = None
    api_port: Optional[int] = None
    gateway_host_port: Optional[int] = None    # the Liqo gateway's host UDP port
    reservations: list[Reservation] = field(default_factory=list)
    state_made: bool = False                   # the private state directory exists
    created: bool = False                      # kind create was started: the cluster may exist
    create_attempts: int = 0
    image: str = ""                            # the node image used ('' = kind's default)
    start: str = ""                            # "warm" (a template's clone) or "cold" (kind)
    warm_template: str = ""                    # the template's key (warm)
    warm_reason: str = ""                      # why the run started cold ('' : warm or off)
    api_url: str = ""
    token: str = ""
    variables: dict[str, str] = field(default_factory=dict)  # extra ones (multi-node)
    problems: list[str] = field(default_factory=list)        # what teardown could not fix
    gpus: Optional[Discovery] = None           # the job's GPUs (step gpus), passed by UUID
    node_mounts: list[dict[str, str]] = field(default_factory=list)  # kind extraMounts (GPUs)
    gpus_lost: list[str] = field(default_factory=list)       # gone during the run (Xid)
    # the runtime setup's record (mode, node image, network, cgroups), once teardown ran
    runtime: Optional[dict[str, Any]] = None
