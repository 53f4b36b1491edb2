"""Which NVIDIA GPUs this Slurm job owns, and their device files.

Run in the job step: `nvidia-smi --query-gpu=...` and `nvidia-smi -L` (through KSI's one
runner), then mapped through the environment:

- SLURM_STEP_GPUS / SLURM_JOB_GPUS hold node-global GPU ids (Slurm's gres index: the
  position of the device file in gres.conf, /dev/nvidia0.. sorted, i.e. the minor number).
  KSI matches them against nvidia-smi's `minor_number`, never against its `index`.
- Under ConstrainDevices nvidia-smi inside the step sees only the job's GPUs, re-indexed
  from 0, and CUDA_VISIBLE_DEVICES is 0..n-1: indices there are positions among the GPUs
  the step sees. CUDA_VISIBLE_DEVICES may also hold UUIDs (GPU-..., MIG-...).
- The result is keyed by UUID; a GPU that Slurm did not give this job is never selected.

Parsing is pure (`parse_query`, `parse_list`, `parse_mig_minors`, `select`); `discover`
runs the commands. `python3 -m ksi.gpu --report` prints what it finds (stdlib
only: works from a bare checkout with PYTHONPATH=src, see tests/gpu/check-discovery.sh).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

from ksi.errors import GpuUnavailable, KsiError, last_line

if TYPE_CHECKING:
    from ksi.runner import Runner

FIELDS = ("index", "uuid", "pci.bus_id", "minor_number", "name", "driver_version")
QUERY_ARGV = ("nvidia-smi", "--query-gpu=" + ",".join(FIELDS), "--format=csv,noheader")
LIST_ARGV = ("nvidia-smi", "-L")
CONTROL_FILES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools")
MIG_MINORS = "/proc/driver/nvidia-caps/mig-minors"
NO_DEVICE_VALUES = ("", "NoDevFiles", "-1", "none", "void")
DRIVER_FIX = ("check the NVIDIA driver on this node: 'nvidia-smi' must work inside the job "
              "step (driver loaded, /dev/nvidiactl present; ask the site admin), or run "
              "with --gpus none")

_GPU_LINE = re.compile(r"^GPU (\d+): (.*?) \(UUID: (GPU-[^)]+)\)")
_MIG_LINE = re.compile(r"^\s*MIG (\S+)\s+Device\s+(\d+): \(UUID: (MIG-[^)]+)\)")
_LEGACY_MIG = re.compile(r"^MIG-(GPU-[0-9a-fA-F-]+)/(\d+)/(\d+)$")  # R450 drivers


@dataclass(frozen=True)
class Gpu:
    """One GPU (or one MIG device) as nvidia-smi sees it in this step."""

    index: str                       # nvidia-smi's index here; MIG: "<gpu>:<device>"
    uuid: str                        # GPU-... or MIG-...
    bus_id: str = ""
    minor: Optional[int] = None      # /dev/nvidia<minor> (MIG: the physical GPU's)
    name: str = ""
    parent: str = ""                 # MIG: the physical GPU's UUID
    device_files: tuple[str, ...] = ()

    @property
    def is_mig(self) -> bool:
        return self.uuid.startswith("MIG-")


@dataclass(frozen=True)
class GpuRequest:
    """What the job environment says about GPUs (the three variables, as given)."""

    cuda_visible: Optional[str] = None
    step_gpus: str = ""
    job_gpus: str = ""
    in_slurm: bool = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> GpuRequest:
        return cls(cuda_visible=environ.get("CUDA_VISIBLE_DEVICES"),
                   step_gpus=environ.get("SLURM_STEP_GPUS", ""),
                   job_gpus=environ.get("SLURM_JOB_GPUS", ""),
                   in_slurm=bool(environ.get("SLURM_JOB_ID") or environ.get("SLURM_JOBID")))

    @property
    def slurm_ids(self) -> list[str]:
        return parse_ids(self.step_gpus or self.job_gpus)

    @property
    def slurm_source(self) -> str:
        return "SLURM_STEP_GPUS" if self.step_gpus else "SLURM_JOB_GPUS"

    def expects_gpus(self) -> bool:
        """Slurm (or the user) gave this step GPUs."""
        cv = self.cuda_visible
        return bool(self.slurm_ids) or (cv is not None and bool(parse_ids(cv)))


@dataclass
class Discovery:
    """The job's GPUs, the GPUs seen here that are not the job's, and the driver."""

    job: list[Gpu] = field(default_factory=list)
    others: list[Gpu] = field(default_factory=list)
    driver_version: str = ""
    control_files: list[str] = field(default_factory=list)
    selected_by: str = ""
    missing_files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def uuids(self) -> list[str]:
        return [g.uuid for g in self.job]

    def device_files(self) -> list[str]:
        """Every device file the node needs: the job's GPUs' and the control files."""
        out: list[str] = []
        for path in [f for g in self.job for f in g.device_files] + self.control_files:
            if path not in out:
                out.append(path)
        return out

    def foreign_device_files(self) -> list[str]:
        """Device files of GPUs that are not the job's (removed from the node)."""
        mine = set(self.device_files())
        out: list[str] = []
        for path in (f for g in self.others for f in g.device_files):
            if path not in mine and path not in out:
                out.append(path)
        return out

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["device_files"] = self.device_files()
        return d


# ------------------------------------------------------------------ pure parsing
def _field(value: str) -> str:
    value = value.strip()
    return "" if value in ("[N/A]", "N/A", "[Not Supported]") else value


def parse_query(text: str) -> tuple[list[Gpu], str]:
    """Rows of `nvidia-smi --query-gpu=<FIELDS> --format=csv,noheader` -> (GPUs, driver)."""
    gpus, driver = [], ""
    for line in text.splitlines():
        if not line.strip():
            continue
        cols = [_field(c) for c in line.split(",")]
        if len(cols) < 4 or not cols[1].startswith("GPU-"):
            continue
        minor = int(cols[3]) if cols[3].isdigit() else None
        name = cols[4] if len(cols) > 4 else ""
        driver = driver or (cols[5] if len(cols) > 5 else "")
        files = (f"/dev/nvidia{minor}",) if minor is not None else ()
        gpus.append(Gpu(index=cols[0], uuid=cols[1], bus_id=cols[2], minor=minor, name=name,
                        device_files=files))
    return gpus, driver


def parse_list(text: str) -> list[tuple[str, str, list[str]]]:
    """`nvidia-smi -L` -> [(gpu index, GPU UUID, [MIG UUIDs])] in listing order."""
    out: list[tuple[str, str, list[str]]] = []
    for line in text.splitlines():
        m = _GPU_LINE.match(line.strip())
        if m:
            out.append((m.group(1), m.group(3), []))
            continue
        m = _MIG_LINE.match(line)
        if m and out:
            out[-1][2].append(m.group(3))
    return out


def parse_mig_minors(text: str) -> dict[str, int]:
    """/proc/driver/nvidia-caps/mig-minors ("gpu0/gi1/ci0/access 12" lines) -> {cap: minor}
    (the format libnvidia-container and nvidia-container-toolkit's internal/nvcaps read)."""
    caps: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            caps[parts[0]] = int(parts[1])
    return caps


def mig_cap_files(caps: Mapping[str, int], gpu_minor: int, gi: int, ci: int) -> list[str]:
    """/dev/nvidia-caps/nvidia-cap<M> of a MIG device's GPU instance and compute instance."""
    keys = (f"gpu{gpu_minor}/gi{gi}/access", f"gpu{gpu_minor}/gi{gi}/ci{ci}/access")
    return [f"/dev/nvidia-caps/nvidia-cap{caps[k]}" for k in keys if k in caps]


def parse_ids(value: Optional[str]) -> list[str]:
    """A GPU list as Slurm/CUDA write it ("0,2", "0-3", "GPU-..,MIG-..") -> tokens; the
    'no device' spellings ("", NoDevFiles, -1) -> []."""
    if value is None or value.strip() in NO_DEVICE_VALUES:
        return []
    out: list[str] = []
    for token in (t.strip() for t in value.split(",")):
        m = re.fullmatch(r"(\d+)-(\d+)", token)
        if m:
            out += [str(i) for i in range(int(m.group(1)), int(m.group(2)) + 1)]
        elif token:
            out.append(token)
    return out


def with_mig(gpus: Sequence[Gpu], listing: Sequence[tuple[str, str, list[str]]]) -> list[Gpu]:
    """The physical GPUs followed by the MIG devices `nvidia-smi -L` lists under them."""
    by_uuid = {g.uuid: g for g in gpus}
    out = list(gpus)
    for _index, uuid, migs in listing:
        parent = by_uuid.get(uuid)
        if parent is None:
            continue
        for n, mig in enumerate(migs):
            out.append(Gpu(index=f"{parent.index}:{n}", uuid=mig, bus_id=parent.bus_id,
                           minor=parent.minor, name=parent.name, parent=parent.uuid,
                           device_files=parent.device_files))
    return out


def _match_uuid(token: str, pool: Sequence[Gpu]) -> Optional[Gpu]:
    exact = [g for g in pool if g.uuid == token]
    if exact:
        return exact[0]
    prefix = [g for g in pool if g.uuid.startswith(token)]  # CUDA accepts unique prefixes
    return prefix[0] if len(prefix) == 1 else None


def _legacy_mig(token: str, pool: Sequence[Gpu], caps: Mapping[str, int]) -> Optional[Gpu]:
    """MIG-GPU-<uuid>/<gi>/<ci> (older drivers): a MIG device of a GPU in the pool."""
    m = _LEGACY_MIG.match(token)
    parent = next((g for g in pool if m and g.uuid == m.group(1)), None)
    if not m or parent is None:
        return None
    files = parent.device_files
    if parent.minor is not None:
        files += tuple(mig_cap_files(caps, parent.minor, int(m.group(2)), int(m.group(3))))
    return Gpu(index=f"{parent.index}:{m.group(2)}/{m.group(3)}", uuid=token,
               bus_id=parent.bus_id, minor=parent.minor, name=parent.name,
               parent=parent.uuid, device_files=files)


def select(seen: Sequence[Gpu], req: GpuRequest, caps: Mapping[str, int] | None = None
           ) -> tuple[list[Gpu], str, list[str]]:
    """The job's devices among those seen (physical GPUs and MIG devices), how they were
    chosen, and notes. Raises GpuUnavailable when Slurm's ids cannot be matched."""
    caps = caps or {}
    physical = [g for g in seen if not g.is_mig]
    notes: list[str] = []
    if not req.in_slurm and req.cuda_visible is None:
        return physical, "no Slurm job: every GPU nvidia-smi sees", notes
    if not req.expects_gpus():
        return [], "the job has no GPUs (no SLURM_*_GPUS, CUDA_VISIBLE_DEVICES empty)", notes
    pool, how, by_minor = physical, "", False
    ids = req.slurm_ids
    if not physical:
        raise GpuUnavailable("Slurm gave this step GPUs but nvidia-smi sees none", DRIVER_FIX)
    tokens = parse_ids(req.cuda_visible) if req.cuda_visible is not None else None
    if ids and any(t.startswith("MIG-") for t in tokens or ()):
        # Slurm's ids of MIG gres are MIG indices (File=/dev/nvidia-caps/...), not minor
        # numbers: the MIG UUIDs Slurm put into CUDA_VISIBLE_DEVICES decide
        how = f"{req.slurm_source}={','.join(ids)} (MIG: by the UUIDs)"
    elif ids:
        matched = [g for g in physical if g.minor is not None and str(g.minor) in ids]
        if len(matched) == len(ids):
            pool, by_minor = matched, True
            how = f"{req.slurm_source}={','.join(ids)} (node-global ids = minor numbers)"
        elif len(physical) == len(ids):
            how = (f"{req.slurm_source}={','.join(ids)}: nvidia-smi sees exactly "
                   f"{len(ids)} GPU(s) (ConstrainDevices)")
            notes.append("Slurm's GPU ids are not the minor numbers here; the step's "
                         "device constraint decides")
        else:
            minors = ",".join(str(g.minor) for g in physical)
            raise GpuUnavailable(
                f"{req.slurm_source}={','.join(ids)} names GPUs this step cannot match: "
                f"nvidia-smi sees {len(physical)} GPU(s) with minor numbers {minors or '-'}",
                "ask the site admin to list the GPUs in gres.conf as File=/dev/nvidia<N> "
                "(AutoDetect=nvml) and to set ConstrainDevices=yes, or run with --gpus none")
    if tokens is None:
        return pool, how, notes
    if not tokens:
        return [], "CUDA_VISIBLE_DEVICES gives no device", notes
    mig_pool = [g for g in seen if g.is_mig and g.parent in {p.uuid for p in pool}]
    # Slurm put its own node-global ids there (no renumbering): match them by minor number.
    # Otherwise a number is a CUDA index: among the GPUs the step sees (renumbered from 0
    # under ConstrainDevices), and it must still be one of the job's.
    positional = by_minor and set(tokens) == set(ids)
    ordered = sorted(physical, key=lambda g: int(g.index) if g.index.isdigit() else 0)
    picked: list[Gpu] = []
    for t in tokens:
        if t.startswith("MIG-GPU-"):
            gpu = _legacy_mig(t, pool, caps)
        elif t.startswith("MIG-"):
            gpu = _match_uuid(t, mig_pool)
        elif t.startswith("GPU-"):
            gpu = _match_uuid(t, pool)
        elif t.isdigit() and positional:
            gpu = next((g for g in pool if str(g.minor) == t), None)
        elif t.isdigit():
            gpu = ordered[int(t)] if int(t) < len(ordered) else None
            gpu = gpu if gpu in pool else None
        else:
            gpu = None
        if gpu is None:
            notes.append(f"CUDA_VISIBLE_DEVICES entry {t!r} is not one of this job's GPUs: "
                         "not passed")
        elif gpu not in picked:
            picked.append(gpu)
    where = f"; {how}" if how else ""
    return picked, f"CUDA_VISIBLE_DEVICES={req.cuda_visible} (by UUID/position){where}", notes


# ------------------------------------------------------------------ the commands
def run_nvidia_smi(runner: Runner, argv: Sequence[str] = QUERY_ARGV) -> str:
    """Output of one nvidia-smi call; '' when it reports no devices. Raises GpuUnavailable
    when nvidia-smi is missing or fails (naming the driver)."""
    try:
        res = runner.run(list(argv), timeout=60, check=False)
    except KsiError as exc:  # not installed / not executable / timed out
        raise GpuUnavailable(f"nvidia-smi cannot run in the job step: {exc.cause}",
                             DRIVER_FIX) from exc
    text = res.stdout + res.stderr
    if "No devices were found" in text:
        return ""
    if res.returncode != 0:
        raise GpuUnavailable(f"nvidia-smi failed (exit {res.returncode}): "
                             f"{last_line(res.stderr) or last_line(res.stdout)}", DRIVER_FIX)
    return res.stdout


def discover(runner: Runner, req: GpuRequest, *, mode: str = "auto", root: str = "/",
             caps_text: Optional[str] = None) -> Discovery:
    """The job's GPUs (see the module docstring). mode: auto | none | required.

    GPUs expected (Slurm gave some, or mode=required) and nvidia-smi missing/failing or
    nothing matches -> GpuUnavailable (exit 97). No GPUs expected -> an empty Discovery
    (with the GPUs seen here as `others` when nvidia-smi works, for the dry run)."""
    if mode == "none":
        return Discovery(selected_by="gpus = none")
    expected = req.expects_gpus() or mode == "required"
    if not expected and runner.which("nvidia-smi") is None:
        return Discovery(selected_by="no nvidia-smi on PATH and no GPUs in the job")
    try:
        gpus, driver = parse_query(run_nvidia_smi(runner))
        listing = parse_list(run_nvidia_smi(runner, LIST_ARGV)) if gpus else []
    except GpuUnavailable:
        if expected:
            raise
        return Discovery(selected_by="nvidia-smi failed and the job has no GPUs")
    if caps_text is None:
        caps_text = _read(Path(root) / MIG_MINORS.lstrip("/")) or ""
    seen = with_mig(gpus, listing)
    job, how, notes = select(seen, req, parse_mig_minors(caps_text))
    if expected and not job:
        if req.expects_gpus():
            cause, fix = "Slurm gave this step GPUs", DRIVER_FIX
        else:
            cause, fix = "gpus = required", ("request GPUs (srun --gpus=N or --gres=gpu:N), "
                                             "or run with --gpus auto / --gpus none")
        raise GpuUnavailable(f"{cause} but none is usable here (nvidia-smi sees {len(gpus)} "
                             f"GPU(s); {how})", fix)
    mine = {g.uuid for g in job}
    mig_parents = {g.parent for g in job if g.is_mig}
    others = [g for g in seen if g.uuid not in mine and g.uuid not in mig_parents
              and not (g.is_mig and g.parent in mine)]
    control = list(CONTROL_FILES) if job else []
    if any(g.is_mig for g in job):
        control.append("/dev/nvidia-caps")
    d = Discovery(job=job, others=others, driver_version=driver, control_files=control,
                  selected_by=how, notes=notes)
    d.missing_files = [f for f in d.device_files() if not (Path(root) / f.lstrip("/")).exists()
                       and f != "/dev/nvidia-uvm-tools"]
    return d


def _read(path: Path) -> Optional[str]:
    try:
        return path.read_text()
    except OSError:
        return None
