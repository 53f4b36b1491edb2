"""The job's GPUs into the kind node and its pods (NVIDIA/nvkind's recipe, by UUID).

1. kind config: for each of the job's GPUs a /dev/null bind mount onto
   /var/run/nvidia-container-devices/<UUID> (nvkind's pkg/nvkind/default-config-template
   .yaml). The host runtime's OCI runtime must be nvidia-container-runtime with
   `accept-nvidia-visible-devices-as-volume-mounts = true` (the toolkit's
   internal/config/image/cuda_image.go reads those mount points as the device list):
   it then injects exactly these GPUs, their device files and the driver's libraries.
2. Inside the node after create (nvkind's node.go): check the toolkit is in the node image,
   `nvidia-ctk runtime configure --runtime=containerd --config-source=file
   --set-as-default`, restart containerd; keep the driver from re-creating device files
   (ModifyDeviceFiles: 0) and remove the /dev/nvidia<minor> of GPUs that are not the job's
   (a privileged node inherits the host's device files; nvkind removes them by index, KSI by
   minor number); then check that the node sees only the job's UUIDs.
3. The RuntimeClass `nvidia` and the NVIDIA device plugin DaemonSet (deployments/static/
   nvidia-device-plugin.yml of k8s-device-plugin v0.20.0: image from the archive cache), so
   that a pod asking for `nvidia.com/gpu: N` gets N of them (NVIDIA_VISIBLE_DEVICES=<UUIDs>).
"""

from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from ksi.errors import Exit, GpuSetupFailed
from ksi.gpu.discovery import Discovery
from ksi.images import NVIDIA_DEVICE_PLUGIN

if TYPE_CHECKING:
    from ksi.runner import Runner

DEVICE_PLUGIN_IMAGE = NVIDIA_DEVICE_PLUGIN       # the one list of images: ksi.images
CUDA_SAMPLE_IMAGE = "nvcr.io/nvidia/k8s/cuda-sample:vectoradd-cuda12.5.0"  # e2e test only
VOLUME_MOUNT_ROOT = "/var/run/nvidia-container-devices"
RESOURCE = "nvidia.com/gpu"
PLUGIN_NAME = "nvidia-device-plugin-daemonset"
TOOLKIT_BINARIES = ("nvidia-ctk", "nvidia-container-runtime")
SAVE_FIX = "ksi images save --gpu"


# ------------------------------------------------------------------ kind config
def node_mounts(d: Discovery) -> list[dict[str, str]]:
    """kind extraMounts passing the job's GPUs by UUID (nvkind's volume-mount route)."""
    return [{"hostPath": "/dev/null", "containerPath": f"{VOLUME_MOUNT_ROOT}/{uuid}"}
            for uuid in d.uuids]


def add_to_kind_config(config: dict[str, Any], d: Discovery) -> dict[str, Any]:
    """A copy of a kind config (as data) whose nodes get the job's GPUs and the
    nvidia.com/gpu.present label; unchanged when the job has no GPUs."""
    out = copy.deepcopy(config)
    if not d.job:
        return out
    for node in out.get("nodes") or []:
        node.setdefault("extraMounts", []).extend(node_mounts(d))
        node.setdefault("labels", {})["nvidia.com/gpu.present"] = "true"
    return out


# ------------------------------------------------------------------ inside the node
_PARAMS_SCRIPT = (  # nvkind's PatchProcDriverNvidia: keep the driver from re-creating files
    "grep -q '^ModifyDeviceFiles: 0' /proc/driver/nvidia/params || "
    "{ umount -R /proc/driver/nvidia 2>/dev/null; "
    "cp /proc/driver/nvidia/params /root/gpu-params && "
    "sed -i 's/^ModifyDeviceFiles: 1$/ModifyDeviceFiles: 0/' /root/gpu-params && "
    "mount --bind /root/gpu-params /proc/driver/nvidia/params; }")


def _remove_script(paths: list[str]) -> str:
    quoted = " ".join(f"'{p}'" for p in paths)
    return (f"for f in {quoted}; do while umount \"$f\" 2>/dev/null; do :; done; "
            "rm -f \"$f\"; done")


def node_commands(d: Discovery, *, rootless: bool = False) -> list[tuple[str, list[str]]]:
    """(what, argv) run inside each node container after create, in order."""
    cmds: list[tuple[str, list[str]]] = [
        ("nvidia-container-toolkit in the node image",
         ["sh", "-c", " && ".join(f"command -v {b}" for b in TOOLKIT_BINARIES)]),
    ]
    if rootless:
        cmds.append(("no-cgroups for the rootless node",
                     ["nvidia-ctk", "config", "--set", "nvidia-container-cli.no-cgroups=true",
                      "--in-place"]))
    cmds += [
        ("nvidia runtime for containerd",
         ["nvidia-ctk", "runtime", "configure", "--runtime=containerd",
          "--config-source=file", "--set-as-default"]),
        ("restart containerd", ["systemctl", "restart", "containerd"]),
        ("driver params: no device file re-creation", ["sh", "-c", _PARAMS_SCRIPT]),
    ]
    foreign = d.foreign_device_files()
    if foreign:
        cmds.append(("remove the device files of GPUs not in the job",
                     ["sh", "-c", _remove_script(foreign)]))
    cmds.append(("the node sees only the job's GPUs", ["nvidia-smi", "-L"]))
    return cmds


def exec_argv(binary: str, node: str, argv: list[str]) -> list[str]:
    return [binary, "exec", node, *argv]


def check_node_listing(d: Discovery, listing: str) -> None:
    """`nvidia-smi -L` in the node must list the job's GPUs and no other."""
    from ksi.gpu.discovery import parse_list

    seen = {u for _i, gpu, migs in parse_list(listing) for u in [gpu, *migs]}
    wanted = set(d.uuids)
    extra = seen - wanted - {g.parent for g in d.job if g.is_mig}
    missing = wanted - seen
    if extra or missing:
        raise GpuSetupFailed(
            "the kind node does not see exactly the job's GPUs"
            + (f"; not the job's: {', '.join(sorted(extra))}" if extra else "")
            + (f"; missing: {', '.join(sorted(missing))}" if missing else ""),
            "check the host's nvidia-container-toolkit config "
            "(accept-nvidia-visible-devices-as-volume-mounts = true, nvidia runtime as the "
            "runtime's default): 'ksi doctor'")


# ------------------------------------------------------------------ manifests
def runtime_class() -> dict[str, Any]:
    return {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
            "metadata": {"name": "nvidia"}, "handler": "nvidia"}


def device_plugin(image: str = DEVICE_PLUGIN_IMAGE) -> dict[str, Any]:
    """k8s-device-plugin's static DaemonSet, with UUIDs as device ids, the nvidia runtime
    class, and no pull (the image is preloaded from the archive cache)."""
    env = [{"name": "DEVICE_ID_STRATEGY", "value": "uuid"},
           {"name": "DEVICE_LIST_STRATEGY", "value": "envvar"},
           {"name": "FAIL_ON_INIT_ERROR", "value": "true"}]
    container = {
        "image": image, "name": "nvidia-device-plugin-ctr", "imagePullPolicy": "Never",
        "env": env,
        "securityContext": {"allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "kubelet-device-plugins-dir",
                          "mountPath": "/var/lib/kubelet/device-plugins"}],
    }
    spec = {
        "tolerations": [{"key": RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
        "priorityClassName": "system-node-critical",
        "runtimeClassName": "nvidia",
        "containers": [container],
        "volumes": [{"name": "kubelet-device-plugins-dir",
                     "hostPath": {"path": "/var/lib/kubelet/device-plugins",
                                  "type": "Directory"}}],
    }
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": PLUGIN_NAME, "namespace": "kube-system"},
            "spec": {"selector": {"matchLabels": {"name": "nvidia-device-plugin-ds"}},
                     "updateStrategy": {"type": "RollingUpdate"},
                     "template": {"metadata": {"labels": {"name": "nvidia-device-plugin-ds"}},
                                  "spec": spec}}}


def manifests_json(image: str = DEVICE_PLUGIN_IMAGE) -> str:
    """Both objects as one kubectl-apply-able List (JSON is YAML)."""
    return json.dumps({"apiVersion": "v1", "kind": "List",
                       "items": [runtime_class(), device_plugin(image)]}, indent=1)


# ------------------------------------------------------------------ the step
@dataclass
class GpuSetup:
    """The run's GPU step (after `ready`): node commands, images, RuntimeClass, device
    plugin, and the wait until the node advertises the job's GPUs.

    `run(cluster, runner)` takes the run's cluster object (duck-typed: `plan.cluster`,
    `provider.binary`, `provider.node_containers(name)`, `kind.load_archive(name, path)`,
    `kubectl.run(...)`); nothing to undo (everything lives in the cluster, deleted by
    teardown). A failure raises GpuSetupFailed (98): never a silent CPU-only cluster."""

    discovery: Discovery
    archive_dir: str = ""
    mode: str = "auto"
    rootless: bool = False
    image: str = DEVICE_PLUGIN_IMAGE
    timeout: float = 180.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    done: list[str] = field(default_factory=list)
    name: ClassVar[str] = "gpus"

    @property
    def active(self) -> bool:
        return self.mode != "none" and bool(self.discovery.job)

    def preflight(self) -> None:
        """Before create (so that nothing is created): the device plugin's archive exists."""
        if self.active:
            self.archive()

    def archive(self) -> Path:
        """The device plugin's archive in the cache; GpuSetupFailed naming it when absent."""
        from ksi.images import find_archive

        found = find_archive(self.archive_dir, self.image) if self.archive_dir else None
        if found is None:
            where = self.archive_dir or "(image_archive_dir is not set)"
            raise GpuSetupFailed(
                f"the job has GPUs but the NVIDIA device plugin image {self.image} is not "
                f"in the image archive cache {where}",
                f"on a machine that can pull: {SAVE_FIX} (saves {self.image}), with "
                "image_archive_dir set; or run with --gpus none")
        return found

    def describe(self, cluster: str = "<cluster>", binary: str = "<runtime>",
                 node: str = "<node>") -> list[str]:
        """The commands this step would run, in order (for --dry-run), as text."""
        from ksi.runner import quote

        return [quote(argv) for argv in self.argvs(cluster, binary, [node])]

    def argvs(self, cluster: str, binary: str, nodes: list[str]) -> list[list[str]]:
        """The commands `run` executes for these node containers (kubectl's without its
        kubeconfig flags: `kubectl apply -f -`, `kubectl get nodes -o json`)."""
        from ksi.images import archive_name

        if not self.active:
            return []
        out = [exec_argv(binary, node, argv) for node in nodes
               for _w, argv in node_commands(self.discovery, rootless=self.rootless)]
        out.append(["kind", "load", "image-archive",
                    str(Path(self.archive_dir or "<image_archive_dir>")
                        / archive_name(self.image)), "--name", cluster])
        out.append(["kubectl", "apply", "-f", "-"])
        out.append(["kubectl", "get", "nodes", "-o", "json"])
        return out

    def run(self, cluster: Any, runner: Runner) -> None:
        if not self.active:
            return
        archive = self.archive()                      # before touching the node
        name = cluster.plan.cluster
        binary = cluster.provider.binary
        for node in cluster.provider.node_containers(name):
            for what, argv in node_commands(self.discovery, rootless=self.rootless):
                res = runner.run(exec_argv(binary, node, argv), timeout=120,
                                 what=f"GPU setup in {node}: {what}",
                                 code=Exit.GPU_SETUP_FAILED, fix=_fix(what))
                if argv[:2] == ["nvidia-smi", "-L"]:
                    check_node_listing(self.discovery, res.stdout)
            self.done.append(f"node {node}")
        cluster.kind.load_archive(name, str(archive))
        cluster.kubectl.run("apply", "-f", "-", input=manifests_json(self.image),
                            what="kubectl apply (NVIDIA device plugin)",
                            code=Exit.GPU_SETUP_FAILED, fix="see the device plugin's logs: "
                            f"kubectl -n kube-system logs ds/{PLUGIN_NAME}")
        self.done.append("device plugin")
        self.wait_allocatable(cluster)

    def wait_allocatable(self, cluster: Any) -> None:
        """Until every node advertises the job's GPU count (the plugin registered)."""
        want = str(len(self.discovery.job))
        deadline = self.clock() + self.timeout
        last = ""
        while True:
            res = cluster.kubectl.run("get", "nodes", "-o", "json", timeout=60, check=False)
            if res.returncode == 0:
                counts = [((n.get("status") or {}).get("allocatable") or {}).get(RESOURCE)
                          for n in json.loads(res.stdout or "{}").get("items") or []]
                if counts and all(c == want for c in counts):
                    return
                last = f"allocatable {RESOURCE}: {counts}"
            else:
                last = (res.stderr or res.stdout).strip()[-200:]
            if self.clock() >= deadline:
                raise GpuSetupFailed(
                    f"the node does not advertise {want} {RESOURCE} within "
                    f"{self.timeout:.0f}s ({last})",
                    f"see kubectl -n kube-system logs ds/{PLUGIN_NAME}; or run with --gpus none")
            self.sleep(1.0)

    def undo(self) -> None:
        """Nothing: the objects live in the cluster, which teardown deletes."""
        self.done.clear()


def gpu_step(d: Discovery, settings: Any) -> GpuSetup:
    """The GPU step as the run builds it from its settings (image_archive_dir, gpus)."""
    from ksi.gpu import mode_of

    return GpuSetup(d, archive_dir=str(getattr(settings, "image_archive_dir", "") or ""),
                    mode=mode_of(settings), rootless=os.geteuid() != 0)


def _fix(what: str) -> str:
    if what.startswith("nvidia-container-toolkit"):
        return ("use a node image with nvidia-container-toolkit installed (docs/runtime.md, "
                "GPUs: build it FROM the kind node image), saved with 'ksi images save'; "
                "or run with --gpus none")
    return "see docs/runtime.md (GPUs) and 'ksi doctor'; or run with --gpus none"
