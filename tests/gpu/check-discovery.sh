#!/usr/bin/env bash
# Verify KSI's GPU discovery on a real GPU machine, without kind or a container runtime.
#
#   tests/gpu/check-discovery.sh            # outside Slurm: every GPU is "the job's"
#   srun --gpus=2 tests/gpu/check-discovery.sh   # in a job step: only the job's GPUs
#
# Needs bash, python3 (stdlib only) and nvidia-smi; uses this checkout's src/ (no install).
# Prints what discovery finds (UUIDs, minors, device files, driver version), then compares
# it with `nvidia-smi -L`: every GPU and MIG device listed there must be either the job's or
# "not the job's" in the discovery, and nothing else. Exit 0 on agreement, 1 on a mismatch,
# 2 when nvidia-smi is missing or fails, discovery's own exit code when it fails.
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

if ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "check-discovery: nvidia-smi is not on PATH (is the NVIDIA driver installed?)" >&2
    exit 2
fi
json=$(PYTHONPATH="$repo/src${PYTHONPATH:+:$PYTHONPATH}" python3 -m ksi.gpu --json)
rc=$?
if [ $rc -ne 0 ]; then
    echo "check-discovery: KSI's discovery failed (exit $rc)" >&2
    exit $rc
fi
if ! listing=$(nvidia-smi -L 2>&1); then
    echo "check-discovery: nvidia-smi -L failed: $listing" >&2
    exit 2
fi

python3 - "$json" "$listing" <<'PY'
import json
import os
import re
import sys

d = json.loads(sys.argv[1])
listing = sys.argv[2]
print(f"driver {d['driver_version'] or '-'}")
print(f"selected by: {d['selected_by']}")
for key in ("CUDA_VISIBLE_DEVICES", "SLURM_STEP_GPUS", "SLURM_JOB_GPUS"):
    if key in os.environ:
        print(f"{key}={os.environ[key]}")
for g in d["job"]:
    files = ", ".join(g["device_files"]) or "-"
    print(f"job    {g['uuid']}  index {g['index']}  minor {g['minor']}  bus {g['bus_id'] or '-'}"
          f"  files {files}")
for g in d["others"]:
    print(f"other  {g['uuid']}  index {g['index']}  minor {g['minor']}")
print(f"control files: {', '.join(d['control_files']) or '-'}")
for f in d["missing_files"]:
    print(f"WARNING: device file {f} does not exist here")
for n in d["notes"]:
    print(f"note: {n}")

print("--- nvidia-smi -L")
print(listing.rstrip())
listed, parent_of, gpu = set(), {}, None
for line in listing.splitlines():
    m = re.match(r"^GPU \d+: .*\(UUID: (GPU-[^)]+)\)", line.strip())
    if m:
        gpu = m.group(1)
        listed.add(gpu)
        continue
    m = re.match(r"^\s*MIG .*\(UUID: (MIG-[^)]+)\)", line)
    if m:
        listed.add(m.group(1))
        parent_of[m.group(1)] = gpu

job = {g["uuid"] for g in d["job"]}
others = {g["uuid"] for g in d["others"]}
covered = job | others | {g["parent"] for g in d["job"] if g["parent"]}
covered |= {u for u, p in parent_of.items() if p in job}   # MIG devices of a job GPU
problems = []
for u in sorted(listed - covered):
    problems.append(f"{u} is listed by nvidia-smi -L but discovery does not know it")
for u in sorted((job | others) - listed):
    if not u.startswith("MIG-GPU-"):                       # legacy MIG names are not listed
        problems.append(f"{u} is in the discovery but not listed by nvidia-smi -L")
for g in d["job"]:
    if g["minor"] is None and not g["uuid"].startswith("MIG-"):
        problems.append(f"{g['uuid']}: no minor number, so no device file")
for p in problems:
    print(f"MISMATCH: {p}")
if problems:
    sys.exit(1)
print(f"check-discovery: OK ({len(job)} job GPU(s), {len(others)} not the job's, "
      f"{len(listed)} listed by nvidia-smi -L)")
PY
