"""What the command line asks of a run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass
class RunOptions:
    workload: Optional[str]
    shared_dir: Optional[str]
    dry_run: bool = False
    each: bool = False
    manifests: list[str] = field(default_factory=list)
    flags: dict[str, Any] = field(default_factory=dict)
