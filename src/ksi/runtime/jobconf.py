"""The job-scoped runtime's configuration files (ksi.runtime.jobruntime writes them into
its private directory): nerdctl.toml with the cgroupfs driver; for podman a containers.conf
(the site's CONTAINERS_CONF kept, cgroupfs, file events, a private tmp_dir) and a
storage.conf with the storage under the job directory."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Mapping, Optional

log = logging.getLogger("ksi.runtime")
HEADER = "# written by KSI for this job step\n"


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))  # a TOML basic string is a JSON string


def dump_toml(data: Mapping[str, Any]) -> str:
    """Enough TOML for containers.conf/storage.conf: scalars, lists, nested tables."""
    lines: list[str] = []

    def table(prefix: str, d: Mapping[str, Any]) -> None:
        scalars = [(k, v) for k, v in d.items() if not isinstance(v, Mapping)]
        subs = [(k, v) for k, v in d.items() if isinstance(v, Mapping)]
        if prefix and scalars:
            lines.append(f"[{prefix}]")
        for k, v in scalars:
            lines.append(f"{k} = {_toml_value(v)}")
        if scalars:
            lines.append("")
        for k, v in subs:
            table(f"{prefix}.{k}" if prefix else k, v)

    table("", data)
    return "\n".join(lines).rstrip() + "\n"


def load_toml(path: str) -> dict[str, Any]:
    try:
        import tomllib  # type: ignore[import-not-found]  # novermin
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, ValueError) as exc:
        log.warning("ignoring CONTAINERS_CONF %s: %s", path, exc)
        return {}


def podman_conf(base_conf: Optional[str], tmp_dir: str) -> dict[str, Any]:
    """The per-job containers.conf: the site's file (CONTAINERS_CONF) plus cgroupfs and a
    private tmp_dir (exit files, locks; root podman would share /run/libpod otherwise)."""
    conf = load_toml(base_conf) if base_conf else {}
    engine = conf.setdefault("engine", {})
    engine["cgroup_manager"] = "cgroupfs"   # no systemd: containers stay in the job's cgroup
    engine["events_logger"] = "file"
    engine["tmp_dir"] = tmp_dir
    return conf


def storage_driver(environ: Mapping[str, str]) -> str:
    """The site's storage driver (CONTAINERS_STORAGE_CONF), else overlay as root, vfs
    rootless."""
    base = environ.get("CONTAINERS_STORAGE_CONF")
    if base:
        drv = load_toml(base).get("storage", {}).get("driver")
        if drv:
            return str(drv)
    return "overlay" if os.getuid() == 0 else "vfs"


def write(provider: str, env: Mapping[str, str], *, run_dir: Path, data_dir: Path,
          environ: Mapping[str, str]) -> None:
    """Write the provider's files where env (the job runtime's environment) names them."""
    if provider == "nerdctl":
        path = Path(env["NERDCTL_TOML"])
        path.parent.mkdir(mode=0o700, exist_ok=True)
        path.write_text(HEADER + "cgroup_manager = \"cgroupfs\"\n")
        return
    conf_path = Path(env["CONTAINERS_CONF"])
    conf_path.parent.mkdir(mode=0o700, exist_ok=True)
    conf = podman_conf(environ.get("CONTAINERS_CONF"), str(run_dir / "libpod" / "tmp"))
    conf_path.write_text(HEADER + dump_toml(conf))
    storage = {"storage": {"driver": storage_driver(environ),
                           "graphroot": str(data_dir / "storage"),
                           "runroot": str(run_dir / "storage")}}
    Path(env["CONTAINERS_STORAGE_CONF"]).write_text(HEADER + dump_toml(storage))
