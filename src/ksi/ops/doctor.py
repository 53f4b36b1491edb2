"""Moved to ksi.checks; kept so `ksi.ops.doctor.cheap_checks` / `raise_first_failure` still
import (a run should call ksi.checks.preflight instead)."""

from __future__ import annotations

from ksi.checks.doctor import all_checks, context_from
from ksi.checks.model import Check, Context, exit_code, raise_first_failure, worst
from ksi.checks.render import render
from ksi.checks.tools import cheap_checks

__all__ = ["Check", "Context", "all_checks", "cheap_checks", "context_from", "exit_code",
           "raise_first_failure", "render", "worst"]
