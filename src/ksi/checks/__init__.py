"""What KSI checks on a node, used by both a run's preflight and `ksi doctor`.

model (Check, Context, results), tools (kind, runtime, kubectl, liqoctl), host (cgroups,
subordinate ids, kernel modules, inotify), runtime (daemon, bypass4netnsd, ports, job
runtime, node containers, Slurm epilog), render (text, JSON, admin script), doctor (all of
them). Host files are read under a root (--root / KSI_DOCTOR_ROOT) so tests use fake trees.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ksi.checks.model import (
    FAIL,
    PASS,
    SKIP,
    WARN,
    Check,
    Context,
    exit_code,
    raise_first_failure,
    worst,
)

if TYPE_CHECKING:
    from ksi.runner import Runner

__all__ = ["FAIL", "PASS", "SKIP", "WARN", "Check", "Context", "exit_code", "preflight",
           "raise_first_failure", "worst"]


def preflight(runner: Runner, provider: str, *, environ: Optional[dict[str, str]] = None
              ) -> None:
    """A run's first step: the provider, kind (new enough) and kubectl are on PATH; raises
    the first problem as a KsiError, in doctor's words."""
    from ksi.checks.tools import cheap_checks

    raise_first_failure(cheap_checks(runner, provider, environ=environ))
