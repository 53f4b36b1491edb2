"""Phase 1, job environment: who and where this run is (Slurm or local)."""

from __future__ import annotations

import os
from typing import Mapping

from ksi.jobenv.base import JobEnvironment
from ksi.jobenv.local import LocalEnvironment
from ksi.jobenv.slurm import SlurmEnvironment

__all__ = ["JobEnvironment", "LocalEnvironment", "SlurmEnvironment", "detect"]


def detect(environ: Mapping[str, str] | None = None) -> JobEnvironment:
    """The Slurm environment when SLURM_JOB_ID is set (KSI_JOBENV=local forces local)."""
    environ = os.environ if environ is None else environ
    if environ.get("KSI_JOBENV", "") != "local" and SlurmEnvironment.applies(environ):
        return SlurmEnvironment(environ)
    return LocalEnvironment(environ)
