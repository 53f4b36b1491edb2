"""Settings: defaults < site file < user file < KSI_* environment < command-line flags.

The frozen, typed `Settings` class is the one option table (OPTIONS lists its fields with their
help and choices), and every value remembers where it came from (`ksi config` prints it)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping, NamedTuple

from ksi.errors import Exit, KsiError

SITE_CONFIG = "/etc/ksi/config.toml"
USER_CONFIG = "~/.config/ksi/config.toml"


@dataclass(frozen=True)
class Option:
    name: str
    default: Any
    kind: type
    help: str
    choices: tuple[str, ...] = ()


class PortRange(NamedTuple):
    """An inclusive host port range, written LOW-HIGH in config files and flags."""

    lo: int
    hi: int

    @classmethod
    def parse(cls, value: Any) -> PortRange:
        if isinstance(value, (tuple, list)) and len(value) == 2:
            a, b = int(value[0]), int(value[1])
        else:
            lo, _, hi = str(value).partition("-")
            try:
                a, b = int(lo), int(hi or lo)
            except ValueError:
                a = b = 0
        if not (0 < a <= b < 65536):
            raise ValueError(f"{value!r} is not a port range like 30000-32767")
        return cls(a, b)

    def __str__(self) -> str:
        return f"{self.lo}-{self.hi}"

    def __call__(self) -> tuple[int, int]:
        """`settings.port_range()` as before the settings were typed: (lo, hi)."""
        return self.lo, self.hi


def _opt(default: Any, help: str, choices: tuple[str, ...] = ()) -> Any:
    """One option: its default, its help (`ksi config`) and its allowed values."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class Settings:
    """Effective settings. This class is the one option table: one typed, frozen field per
    option, with its default, help and choices (OPTIONS lists them); each value remembers
    where it came from (`origins`)."""

    provider: str = _opt("nerdctl", "container runtime for kind: nerdctl, podman, docker or auto "
                         "(validated by the provider registry)")
    image: str = _opt("", "kind node image (empty: kind's default)")
    systemd_scope: bool = _opt(False, "wrap kind in 'systemd-run --user --scope'")
    state_dir: str = _opt("", "private node-local state (default $XDG_RUNTIME_DIR/ksi or "
                          "/tmp/ksi-$UID)")
    lock_dir: str = _opt("/tmp/ksi-locks", "host-wide port reservation directory (1777)")
    port_range: PortRange = _opt(PortRange(30000, 32767), "range for K8S_PORT and Liqo's gateway "
                                 "port")
    api_port_range: PortRange = _opt(PortRange(41000, 41999), "range for the API server host port")
    api_address: str = _opt("", "API server address (default 127.0.0.1 on one node, the node's "
                            "address when federating)")
    create_retries: int = _opt(2, "retries of 'kind create' on the node start-up failure")
    create_timeout: float = _opt(600.0, "seconds for one 'kind create cluster'")
    ready_timeout: float = _opt(300.0, "seconds for the nodes to become Ready")
    token_duration: int = _opt(86400, "token lifetime in seconds without a Slurm time limit")
    token_margin: int = _opt(600, "seconds added to the job's remaining time for the token")
    teardown_margin: int = _opt(60, "seconds before the time limit at which KSI tears down")
    workload_grace: float = _opt(15.0, "seconds between forwarding SIGTERM and SIGKILL")
    kind_config: str = _opt("", "YAML fragment merged into the rendered kind config")
    log_dir: str = _opt("", "where cluster logs go on failure (default ./ksi-logs)")
    report: str = _opt("", "run report path (default ./ksi-report-JOB-STEP-NODE.json)")
    pod_subnet_pool: str = _opt("10.100.0.0/14", "pool of per-node pod subnets (/20 each)")
    service_subnet_pool: str = _opt("10.104.0.0/14", "pool of per-node service subnets")
    peer_concurrency: int = _opt(8, "Liqo peerings run at once by the head (8 at once were "
                                 "verified on real Liqo 1.0.1)")
    federate: str = _opt("auto", "Liqo: auto (when the step has several nodes) or always (also on "
                         "one node, so a multi-node workload runs unchanged)", ("auto", "always"))
    liqo_version: str = _opt("v1.0.1", "Liqo release liqoctl installs (--version)")
    liqo_chart: str = _opt("", "local Liqo Helm chart directory (offline nodes; liqoctl install "
                           "--local-chart-path)")
    liqo_networking: bool = _opt(True, "Liqo's networking module (WireGuard + Geneve); off: "
                                 "virtual nodes and offloading, but no pod traffic between the "
                                 "nodes")
    liqo_set: str = _opt("", "comma list of extra KEY=VALUE chart values for liqoctl install "
                         "(--set)")
    rendezvous_timeout: float = _opt(900.0, "seconds to wait for the other nodes")
    heartbeat_interval: float = _opt(5.0, "seconds between multi-node heartbeats")
    heartbeat_timeout: float = _opt(30.0, "seconds without heartbeat before a node is dead")
    shared_check_timeout: float = _opt(30.0, "seconds the nodes wait for each other in the shared "
                                       "directory before calling it not shared")
    runtime_mode: str = _opt("user", "where the runtime runs", ("user", "job"))
    image_archive_dir: str = _opt("", "directory of image archives (offline node images)")
    image_archive: str = _opt("", "node image archive, loaded when the runtime lacks the image "
                              "(its image is used when 'image' is empty)")
    preload: str = _opt("", "comma list of image archives loaded into each new cluster")
    registry_mirrors: str = _opt("", "comma list of registry=mirror-url for containerd")
    bypass4netns: str = _opt("auto", "bypass4netns for nerdctl nodes", ("auto", "on", "off"))
    gc_on_start: bool = _opt(True, "remove this user's leftovers of ended jobs on start")
    registry_dir: str = _opt("", "shared directory (all nodes) where each run registers its "
                             "cluster for 'ksi ls --all-nodes' (empty: off)")
    poll_interval: float = _opt(1.0, "seconds between status polls (manifests)")
    gpus: str = _opt("auto", "GPUs for the node containers: auto (the job's GPUs, when there are "
                     "any), none, or required (fail without GPUs)", ("auto", "none", "required"))
    image_pull_timeout: float = _opt(300.0, "seconds a manifest run's image pull may keep failing "
                                     "(ErrImagePull, ImagePullBackOff) before the run fails")
    logs: str = _opt("follow", "manifest runs: the pods' logs live, at the end, or not",
                     ("follow", "end", "none"))
    warm: str = _opt("auto", "warm start from a per-user cluster template: auto (use a valid "
                     "template made by 'ksi warm', else create cold), build (also make the "
                     "template on a run that has none), off (always cold, as --cold)",
                     ("auto", "build", "off"))
    warm_dir: str = _opt("", "where this user's template records live (default "
                         "$XDG_STATE_HOME/ksi/warm or ~/.local/state/ksi/warm; 0700)")
    warm_timeout: float = _opt(60.0, "seconds a warm clone may take to answer before the run "
                               "falls back to a cold create")
    origins: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        origins = {o.name: "default" for o in OPTIONS}
        origins.update(self.origins)
        object.__setattr__(self, "origins", MappingProxyType(origins))

    @classmethod
    def defaults(cls) -> Settings:
        """Every option at its default, origin "default"."""
        return cls()

    def replace(self, *, origin: str = "replace", **changes: Any) -> Settings:
        """A copy with changes, each converted and checked as a config file's value is."""
        values = {o.name: getattr(self, o.name) for o in OPTIONS}
        origins = dict(self.origins)
        for name, value in changes.items():
            values[name] = _convert(_option(name, origin), value, origin)
            origins[name] = origin
        return type(self)(**values, origins=origins)

    def table(self) -> list[tuple[str, Any, str]]:
        """(name, value as written in a config file, origin) in OPTIONS order."""
        return [(o.name, shown(getattr(self, o.name)), self.origins.get(o.name, "default"))
                for o in OPTIONS]


_KINDS = {k.__name__: k for k in (str, bool, int, float, PortRange)}
OPTIONS: tuple[Option, ...] = tuple(
    Option(f.name, f.default, _KINDS[str(f.type)], f.metadata["help"], f.metadata["choices"])
    for f in dataclasses.fields(Settings) if f.name != "origins")
BY_NAME = {o.name: o for o in OPTIONS}



def _convert(opt: Option, value: Any, origin: str) -> Any:
    try:
        if opt.kind is bool:
            if isinstance(value, bool):
                out: Any = value
            elif str(value).strip().lower() in {"1", "true", "yes", "on"}:
                out = True
            elif str(value).strip().lower() in {"0", "false", "no", "off", ""}:
                out = False
            else:
                raise ValueError("expected true or false")
        elif opt.kind is int:
            if isinstance(value, bool):
                raise ValueError("expected a whole number")
            out = int(value)
        elif opt.kind is float:
            if isinstance(value, bool):
                raise ValueError("expected a number")
            out = float(value)
        elif opt.kind is PortRange:
            out = PortRange.parse(value)
        else:
            out = str(value)
    except (TypeError, ValueError) as exc:
        if opt.kind is PortRange:
            raise KsiError(f"{origin}: {exc}", "write it as LOW-HIGH",
                           code=Exit.CONFIG_INVALID) from exc
        raise KsiError(f"{origin}: {opt.name}={value!r} is invalid ({exc})",
                       f"set {opt.name} to a {opt.kind.__name__}", code=Exit.CONFIG_INVALID
                       ) from exc
    if opt.choices and out not in opt.choices:
        raise KsiError(f"{origin}: {opt.name}={out!r} is not one of {', '.join(opt.choices)}",
                       f"choose one of: {', '.join(opt.choices)}", code=Exit.CONFIG_INVALID)
    return out


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib  # type: ignore[import-not-found]  # novermin (3.11+, tomli below)
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise KsiError(f"cannot read config file {path}: {exc.strerror}",
                       f"fix the permissions of {path}", code=Exit.CONFIG_INVALID) from exc
    except tomllib.TOMLDecodeError as exc:
        raise KsiError(f"config file {path} is not valid TOML: {exc}",
                       f"correct the syntax in {path}", code=Exit.CONFIG_INVALID) from exc
    section = data.get("ksi", data)
    if not isinstance(section, dict):
        raise KsiError(f"config file {path}: [ksi] must be a table", f"fix {path}",
                       code=Exit.CONFIG_INVALID)
    return section


def _option(name: str, origin: str) -> Option:
    opt = BY_NAME.get(name)
    if opt is None:
        raise KsiError(f"{origin}: unknown setting {name!r}",
                       f"remove it; known settings: {', '.join(sorted(BY_NAME))}",
                       code=Exit.CONFIG_INVALID)
    return opt


def shown(value: Any) -> Any:
    """A value as config files write it (a port range as LOW-HIGH)."""
    return str(value) if isinstance(value, PortRange) else value




def load(flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
         *, expand: Callable[[str], str] = os.path.expanduser) -> Settings:
    """Build settings from the layers; raises KsiError(CONFIG_INVALID) on bad input."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}

    def put(name: str, value: Any, origin: str) -> None:
        values[name] = _convert(_option(name, origin), value, origin)
        origins[name] = origin

    for path_text, label in ((environ.get("KSI_SITE_CONFIG", SITE_CONFIG), "site"),
                             (environ.get("KSI_USER_CONFIG", USER_CONFIG), "user")):
        path = Path(expand(path_text))
        if path.is_file():
            for key, value in _load_toml(path).items():
                put(key, value, f"{label} file {path}")
    for opt in OPTIONS:
        env_name = "KSI_" + opt.name.upper()
        if env_name in environ:
            put(opt.name, environ[env_name], f"environment {env_name}")
    for key, value in (flags or {}).items():
        if value is not None:
            put(key, value, f"flag --{key.replace('_', '-')}")
    return Settings(**values, origins=origins)
