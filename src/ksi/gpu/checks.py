"""`ksi doctor`'s GPU checks: each returns the doctor's Check (name, status, detail, fix).

Host files are read under ctx.root (the doctor's --root), so the tests use fake trees.
Nothing is checked (SKIP) when the job has no GPUs and nvidia-smi is absent.
"""

from __future__ import annotations

import os
import pwd
from typing import TYPE_CHECKING, Any, Optional

from ksi.checks.model import FAIL, PASS, SKIP, WARN, Check
from ksi.errors import Exit, KsiError
from ksi.gpu.discovery import CONTROL_FILES, Discovery, GpuRequest, discover

if TYPE_CHECKING:
    from ksi.checks.model import Context

TOOLKIT_CONFIG = "/etc/nvidia-container-runtime/config.toml"
TOOLKIT_TOOLS = ("nvidia-ctk", "nvidia-container-cli")
VOLUME_MOUNTS_KEY = "accept-nvidia-visible-devices-as-volume-mounts"
ADMIN = "ask the site admin: "


def _request(ctx: Context) -> GpuRequest:
    return GpuRequest.from_environ(ctx.environ)


def _wanted(ctx: Context) -> bool:
    return _request(ctx).expects_gpus() or bool(ctx.runner.which("nvidia-smi", ctx.environ))


def check_nvidia_smi(ctx: Context) -> tuple[Check, Optional[Discovery]]:
    """nvidia-smi works and finds the job's GPUs (fail: the job has GPUs, nvidia-smi not)."""
    req = _request(ctx)
    if not req.expects_gpus() and not ctx.runner.which("nvidia-smi", ctx.environ):
        return Check("gpu: nvidia-smi", SKIP, "no GPUs in this job and no nvidia-smi"), None
    try:
        d = discover(ctx.runner, req, root=str(ctx.root))
    except KsiError as exc:
        return Check("gpu: nvidia-smi", FAIL, exc.cause, exc.fix, int(exc.code)), None
    if not d.job:
        return Check("gpu: nvidia-smi", SKIP, f"driver {d.driver_version or '?'}: "
                     f"{len(d.others)} GPU(s) here, none is this job's ({d.selected_by})"), d
    return Check("gpu: nvidia-smi", PASS, f"driver {d.driver_version}: {len(d.job)} job "
                 f"GPU(s) {', '.join(d.uuids)}; {len(d.others)} not the job's"), d


def check_toolkit(ctx: Context) -> Check:
    """The NVIDIA container toolkit on the host (it injects the GPUs into the node)."""
    if not _wanted(ctx):
        return Check("gpu: container toolkit", SKIP, "no GPUs in this job")
    missing = [t for t in TOOLKIT_TOOLS if not ctx.runner.which(t, ctx.environ)]
    if missing:
        return Check("gpu: container toolkit", FAIL,
                     f"NVIDIA container toolkit missing on this node: {', '.join(missing)} "
                     "not on PATH",
                     ADMIN + "install nvidia-container-toolkit (docs/runtime.md, GPUs)",
                     int(Exit.GPU_SETUP_FAILED))
    return Check("gpu: container toolkit", PASS, "nvidia-ctk and nvidia-container-cli found")


def toolkit_config_path(environ: dict[str, str]) -> str:
    """The config file the toolkit reads (its api/config/v1 GetConfigFilePath):
    NVIDIA_CTK_CONFIG_FILE_PATH, else $XDG_CONFIG_HOME/nvidia-container-runtime/config.toml,
    else /etc/nvidia-container-runtime/config.toml."""
    if environ.get("NVIDIA_CTK_CONFIG_FILE_PATH"):
        return environ["NVIDIA_CTK_CONFIG_FILE_PATH"]
    if environ.get("XDG_CONFIG_HOME"):
        return environ["XDG_CONFIG_HOME"].rstrip("/") + "/nvidia-container-runtime/config.toml"
    return TOOLKIT_CONFIG


def load_toolkit_config(ctx: Context) -> Optional[dict[str, Any]]:
    """The toolkit's config.toml under ctx.root (None when absent or unreadable)."""
    try:
        import tomllib  # type: ignore[import-not-found]  # novermin (3.11+, tomli below)
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib  # type: ignore[no-redef]
    text = ctx.read(toolkit_config_path(ctx.environ))
    if text is None:
        return None
    try:
        return tomllib.loads(text)
    except ValueError:
        return None


def check_toolkit_config(ctx: Context) -> Check:
    """accept-nvidia-visible-devices-as-volume-mounts (the route by UUID) and, rootless,
    libnvidia-container's no-cgroups (it cannot write the device cgroup of a user)."""
    name = "gpu: toolkit config"
    if not _wanted(ctx):
        return Check(name, SKIP, "no GPUs in this job")
    cfg, path = load_toolkit_config(ctx), toolkit_config_path(ctx.environ)
    if cfg is None:
        return Check(name, FAIL, f"{path} is missing or not valid TOML",
                     ADMIN + "nvidia-ctk config --set " + VOLUME_MOUNTS_KEY + "=true "
                     "--in-place", int(Exit.GPU_SETUP_FAILED))
    problems, fixes = [], []
    if cfg.get(VOLUME_MOUNTS_KEY) is not True:
        problems.append(f"{VOLUME_MOUNTS_KEY} is not true (KSI passes GPUs by UUID that way)")
        fixes.append(f"nvidia-ctk config --set {VOLUME_MOUNTS_KEY}=true --in-place")
    rootless = ctx.uid != 0
    if rootless and (cfg.get("nvidia-container-cli") or {}).get("no-cgroups") is not True:
        problems.append("[nvidia-container-cli] no-cgroups is not true: a rootless runtime "
                        "cannot write the device cgroup (libnvidia-container#154)")
        fixes.append("nvidia-ctk config --set nvidia-container-cli.no-cgroups=true "
                     "--in-place")
    if problems:
        return Check(name, FAIL, f"{path}: " + "; ".join(problems),
                     ADMIN + "; ".join(fixes), int(Exit.GPU_SETUP_FAILED))
    return Check(name, PASS, f"{path}: {VOLUME_MOUNTS_KEY} = true"
                 + (", no-cgroups = true (rootless)" if rootless else ""))


def check_device_files(ctx: Context, d: Optional[Discovery]) -> Check:
    """The job's device files exist and you can open them (read and write)."""
    name = "gpu: device files"
    if d is None or not d.job:
        return Check(name, SKIP, "no job GPUs")
    bad = []
    for path in d.device_files():
        real = ctx.path(path)
        if not real.exists():
            if path != "/dev/nvidia-uvm-tools":
                bad.append(f"{path} missing")
        elif not real.is_dir() and not can_read_write(real.stat(), ctx.uid):
            bad.append(f"{path} not read/writable for {ctx.user}")
    if bad:
        return Check(name, FAIL, "; ".join(bad),
                     ADMIN + "load the driver (nvidia-modprobe -u -c=0 creates /dev/nvidia-uvm)"
                     " and give job users access to /dev/nvidia* (mode 0666, Slurm's "
                     "ConstrainDevices limits each job to its own)",
                     int(Exit.GPU_UNAVAILABLE))
    controls = [f for f in CONTROL_FILES if ctx.path(f).exists()]
    return Check(name, PASS, f"{len(d.device_files())} device files usable "
                 f"({', '.join(controls)} and the GPUs')")


def can_read_write(st: os.stat_result, uid: int) -> bool:
    """Whether user uid may open a file with these owner/mode bits read-write (by the mode
    bits, so the doctor answers for the user it checks, not for itself)."""
    if uid == 0:
        return True
    if st.st_uid == uid:
        return st.st_mode & 0o600 == 0o600
    try:
        pw = pwd.getpwuid(uid)
        gids = set(os.getgrouplist(pw.pw_name, pw.pw_gid))
    except KeyError:
        gids = set()
    if st.st_gid in gids:
        return st.st_mode & 0o060 == 0o060
    return st.st_mode & 0o006 == 0o006


def check_device_constraint(ctx: Context, d: Optional[Discovery]) -> Check:
    """A node container outside the job's cgroup is not limited by ConstrainDevices."""
    name = "gpu: device constraint"
    if d is None or not d.job:
        return Check(name, SKIP, "no job GPUs")
    if ctx.runtime_mode == "job":
        return Check(name, PASS, "runtime_mode=job: node containers run inside the job's "
                     "cgroup, where Slurm's ConstrainDevices applies")
    return Check(name, WARN,
                 "runtime_mode=user: node containers run outside the job's cgroup, so Slurm's "
                 "device constraint does not limit them; only KSI's UUID mounts and the "
                 f"device files it removes keep the {len(d.others)} other GPU(s) out",
                 "set runtime_mode = job where the site delegates the task cgroup "
                 "(docs/runtime.md)")


def check_device_plugin_images(ctx: Context, d: Optional[Discovery]) -> Check:
    """The GPU images (the NVIDIA device plugin) are in the offline archive cache."""
    from ksi.images import find_archive, gpu_images

    name = "gpu: device plugin images"
    if d is None or not d.job:
        return Check(name, SKIP, "no job GPUs")
    where = ctx.image_archive_dir
    missing = [i for i in gpu_images() if not where or find_archive(where, i) is None]
    if missing:
        return Check(name, FAIL, f"not in the image archive cache "
                     f"{where or '(image_archive_dir is not set)'}: {', '.join(missing)}",
                     "on a machine that can pull: ksi images save --gpu --dir "
                     f"{where or '<image_archive_dir>'} (and set image_archive_dir)",
                     int(Exit.GPU_SETUP_FAILED))
    return Check(name, PASS, f"{', '.join(gpu_images())} in {where}")


def gpu_checks(ctx: Context) -> list[Check]:
    """All GPU checks, in order (the doctor appends these)."""
    smi, d = check_nvidia_smi(ctx)
    return [smi, check_toolkit(ctx), check_toolkit_config(ctx), check_device_files(ctx, d),
            check_device_constraint(ctx, d), check_device_plugin_images(ctx, d)]
