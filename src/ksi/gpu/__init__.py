"""GPUs: the Slurm job's NVIDIA GPUs, and only those, in the kind node and its pods.

- `discovery`: which GPUs this job owns (nvidia-smi in the job step, mapped by UUID/minor
  through CUDA_VISIBLE_DEVICES / SLURM_STEP_GPUS / SLURM_JOB_GPUS) and their device files.
- `node`: the kind config pieces, the commands run inside the node after create, the
  RuntimeClass and device plugin manifests, and the `GpuSetup` step.
- `checks`: `ksi doctor`'s GPU checks.  `describe`: the dry-run text.
"""

from __future__ import annotations

MODES = ("auto", "none", "required")


def mode_of(settings: object) -> str:
    """The `gpus` setting (default "auto" while the settings do not define it yet)."""
    value = str(getattr(settings, "gpus", "auto") or "auto").lower()
    return value if value in MODES else "auto"
