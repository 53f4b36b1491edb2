#!/usr/bin/env bash
# Seed-compatible entry point: run-workload.sh WORKLOAD_SCRIPT [SHARED_DIR] [ksi run options]
# Same contract as the original KSI (srun -N3 run-workload.sh WORKLOAD SHARED_DIR, sbatch,
# or without Slurm); all the work is done by `ksi run`.
set -euo pipefail
if command -v ksi >/dev/null 2>&1; then
  exec ksi run "$@"
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PYTHONPATH="$here/src${PYTHONPATH:+:$PYTHONPATH}"
exec "${KSI_PYTHON:-python3}" -m ksi run "$@"
