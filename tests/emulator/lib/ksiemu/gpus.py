"""NVIDIA GPUs as a kind node shows them (no GPU here: records and knobs only).

The route emulated is NVIDIA/nvkind's: the host runtime's nvidia-container-runtime, with
``accept-nvidia-visible-devices-as-volume-mounts = true``, reads the node's bind mounts onto
``/var/run/nvidia-container-devices/<UUID>`` and injects exactly those GPUs; inside the node
``nvidia-smi -L`` then lists them (``GPU i: NAME (UUID: U)``, nvidia-smi's format); the NVIDIA
device plugin's DaemonSet (image ``nvcr.io/nvidia/k8s-device-plugin``) registers them with the
kubelet: the node's ``capacity``/``allocatable`` get ``nvidia.com/gpu`` (allocatable leaves out
the devices its health check marked Unhealthy after a critical Xid).

Knobs:
- ``KSI_EMU_GPU_XID=UUID[,UUID]``: those GPUs have an Xid error under load: once a Pod or
  Job requesting ``nvidia.com/gpu`` exists they are not allocatable, and such a pod fails
  (its CUDA calls return errors).
- ``KSI_EMU_GPU_HOST_LEAK=UUID``: a host toolkit that ignores the volume mounts (the config
  key off): the node also sees this GPU.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Iterable, List, Tuple

ROOT = "/var/run/nvidia-container-devices/"
RESOURCE = "nvidia.com/gpu"
PLUGIN_IMAGE = "nvcr.io/nvidia/k8s-device-plugin"


def _env_list(name: str) -> List[str]:
    return [u.strip() for u in os.environ.get(name, "").split(",") if u.strip()]


def lost() -> List[str]:
    return _env_list("KSI_EMU_GPU_XID")


def uuids(container_paths: Iterable[str]) -> List[str]:
    """The GPUs a node gets from its bind mounts (in order, once each)."""
    out: List[str] = []
    for p in container_paths:
        if p.startswith(ROOT) and p[len(ROOT):] not in out:
            out.append(p[len(ROOT):])
    return out


def from_volumes(volumes: Iterable[str]) -> List[str]:
    """The GPUs of a node container from its ``-v host:container[:opts]`` arguments."""
    return uuids(v.split(":")[1] for v in volumes if v.count(":") >= 1)


def smi_list(volumes: Iterable[str]) -> Tuple[str, int]:
    """``nvidia-smi -L`` inside a node container: (stdout, exit code)."""
    gpus = from_volumes(volumes) + _env_list("KSI_EMU_GPU_HOST_LEAK")
    if not gpus:
        return "No devices were found\n", 6
    return "".join(f"GPU {i}: NVIDIA A100-SXM4-40GB (UUID: {u})\n"
                   for i, u in enumerate(gpus)), 0


def plugin_running(objs: Dict[str, Any]) -> bool:
    """A DaemonSet of the NVIDIA device plugin's image exists."""
    for key, o in objs.items():
        if not key.startswith("DaemonSet/"):
            continue
        spec = (((o.get("spec") or {}).get("template") or {}).get("spec") or {})
        if any(str(c.get("image", "")).startswith(PLUGIN_IMAGE)
               for c in spec.get("containers") or []):
            return True
    return False


def node_resources(rec: Dict[str, Any], objs: Dict[str, Any]) -> Tuple[int, int]:
    """(capacity, allocatable) nvidia.com/gpu of each kind node of a cluster record."""
    if not plugin_running(objs):
        return 0, 0
    mine = uuids(str(m.get("containerPath", "")) for m in rec.get("extraMounts") or [])
    loaded = any(k.startswith(("Pod/", "Job/")) and requests_gpu(o) for k, o in objs.items())
    bad = set(lost()) if loaded else set()
    return len(mine), len([u for u in mine if u not in bad])


def requests_gpu(obj: Dict[str, Any]) -> bool:
    """A Pod (or a template) whose containers ask for nvidia.com/gpu."""
    spec = obj.get("spec") or {}
    spec = ((spec.get("template") or {}).get("spec") or spec) if "template" in spec else spec
    for c in spec.get("containers") or []:
        res = c.get("resources") or {}
        if RESOURCE in (res.get("limits") or {}) or RESOURCE in (res.get("requests") or {}):
            return True
    return False
