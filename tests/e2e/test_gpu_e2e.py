"""GPUs on a real NVIDIA GPU node (issue 17): the job's GPUs, and only those, in pods.

Skips here with the reason (no GPU on this machine). Needs, on the GPU node:
- the NVIDIA driver (nvidia-smi), nvidia-container-toolkit configured for the runtime
  (docs/runtime.md, GPUs; `ksi doctor` checks it), the real e2e stack (tests/e2e/conftest.py);
- KSI_E2E_GPU_ARCHIVES: a directory with the device plugin's and the CUDA sample's archives
  (`ksi images save --gpu nvcr.io/nvidia/k8s/cuda-sample:vectoradd-cuda12.5.0 --dir D`),
  used as image_archive_dir;
- KSI_E2E_GPU_NODE_IMAGE: a kind node image with nvidia-container-toolkit installed;
- ideally run inside `srun --gpus=N` on a node with more GPUs than N, so that "only the job's"
  is shown: `srun --gpus=1 python3 -m pytest -m gpu tests/e2e/test_gpu_e2e.py`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ksi.gpu import node
from ksi.gpu.discovery import GpuRequest, discover
from ksi.images import archive_name
from ksi.runner import Runner

pytestmark = pytest.mark.gpu   # not e2e: the GPU reason is checked first, then the stack

WORKLOAD = """#!/bin/bash
set -eu
n={n}
cat <<YAML | kubectl apply -f -
apiVersion: v1
kind: Pod
metadata: {{name: smi}}
spec:
  restartPolicy: Never
  containers:
  - name: smi
    image: {sample}
    imagePullPolicy: Never
    command: ["nvidia-smi", "-L"]
    resources: {{limits: {{nvidia.com/gpu: $n}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: vectoradd}}
spec:
  restartPolicy: Never
  containers:
  - name: vectoradd
    image: {sample}
    imagePullPolicy: Never
    resources: {{limits: {{nvidia.com/gpu: 1}}}}
YAML
for p in smi vectoradd; do
  kubectl wait --for=jsonpath='{{.status.phase}}'=Succeeded pod/$p --timeout=300s
done
kubectl logs smi > smi.out
kubectl logs vectoradd > vectoradd.out
"""


def gpu_node_missing() -> str:
    if not shutil.which("nvidia-smi"):
        return "needs a real NVIDIA GPU node: nvidia-smi is not on PATH (no GPU here)"
    res = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    if res.returncode != 0 or "UUID: GPU-" not in res.stdout:
        return f"needs a real NVIDIA GPU node: nvidia-smi -L found none ({res.stdout.strip()})"
    archives = os.environ.get("KSI_E2E_GPU_ARCHIVES", "")
    if not archives or not Path(archives).is_dir():
        return ("set KSI_E2E_GPU_ARCHIVES to a directory with the GPU images "
                "(ksi images save --gpu " + node.CUDA_SAMPLE_IMAGE + " --dir D)")
    if not os.environ.get("KSI_E2E_GPU_NODE_IMAGE"):
        return "set KSI_E2E_GPU_NODE_IMAGE to a kind node image with nvidia-container-toolkit"
    return ""


def test_pod_sees_exactly_the_jobs_gpus_and_cuda_computes(tmp_path: Path) -> None:
    reason = gpu_node_missing()
    if reason:
        pytest.skip(reason)
    from tests.e2e.conftest import e2e_environ, real_stack

    stack = real_stack()
    d = discover(Runner(), GpuRequest.from_environ(os.environ))
    assert d.job, d.selected_by
    env = e2e_environ(stack)
    env.update({k: v for k, v in os.environ.items()
                if k.startswith("SLURM_") or k == "CUDA_VISIBLE_DEVICES"})
    env["KSI_IMAGE_ARCHIVE_DIR"] = os.environ["KSI_E2E_GPU_ARCHIVES"]
    (tmp_path / "wl.sh").write_text(WORKLOAD.format(n=len(d.job),
                                                    sample=node.CUDA_SAMPLE_IMAGE))
    sample = Path(os.environ["KSI_E2E_GPU_ARCHIVES"]) / archive_name(node.CUDA_SAMPLE_IMAGE)
    res = subprocess.run(["ksi", "run", "--image", os.environ["KSI_E2E_GPU_NODE_IMAGE"],
                          "--preload", str(sample), "wl.sh"], env=env, cwd=str(tmp_path),
                         capture_output=True, text=True, timeout=1800, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    seen = set(re.findall(r"UUID: (GPU-[0-9a-f-]+|MIG-[0-9a-f-]+)",
                          (tmp_path / "smi.out").read_text()))
    assert seen == set(d.uuids), (seen, d.uuids, [g.uuid for g in d.others])
    assert "Test PASSED" in (tmp_path / "vectoradd.out").read_text()
