"""Garbage collection of leftovers whose job has ended."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ksi.plan.plan import Plan
    from ksi.runner import Runner


def quick_pass(plan: Plan, runner: Runner) -> str:
    """Cheap pass on start for the current user (filled in by `ksi gc`)."""
    return ""
