"""What KSI needs from a container runtime, beyond what kind does with it.

Every runtime flag KSI passes lives here or in the runtime's own module: `info` and `version`
with JSON output, `ps` with `--format json`, `inspect` and `network inspect` (JSON by
default), parsed into typed records. The run, `ksi doctor` and `ksi --version` all ask
through these methods."""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Optional

from ksi.errors import CommandFailed, CommandTimeout, Exit, KsiError

if TYPE_CHECKING:
    from ksi.runner import Runner

CLUSTER_LABEL = "io.x-k8s.kind.cluster"  # kind's node container label
ROLE_LABEL = "io.x-k8s.kind.role"       # kind's node role label
SBIN_DIRS = ("/usr/sbin", "/sbin")      # iptables, ip6tables (nerdctl's CNI bridge plugin)


def sbin_path(path: str) -> str:
    """path with /usr/sbin and /sbin appended where missing: nerdctl's CNI bridge plugin looks
    iptables and ip6tables up on PATH ("failed to locate iptables"), and a Debian/RHEL normal
    user's PATH may lack both directories."""
    parts = (path or os.defpath).split(os.pathsep)
    return os.pathsep.join([*parts, *(d for d in SBIN_DIRS if d not in parts)])


@dataclass(frozen=True)
class RuntimeInfo:
    """What `<runtime> info` says about the runtime KSI talks to."""

    rootless: bool
    cgroup_version: int          # 1 or 2; 0 when the runtime does not say
    cgroup_manager: str          # "systemd" or "cgroupfs"; "" when not said
    version: str                 # the server's version ("" when not said)
    devmapper: bool = False      # kind's mountDevMapper: btrfs/zfs/devicemapper storage

    def summary(self) -> dict[str, Any]:
        """The run report's fields."""
        return {"cgroup_driver": self.cgroup_manager or None,
                "cgroup_version": self.cgroup_version or None, "rootless": self.rootless}


@dataclass(frozen=True)
class RuntimeVersion:
    """`<runtime> version --format json`: the client's version and the server's components."""

    client: str
    server: Mapping[str, str]    # component name -> version; empty when the server is down


@dataclass(frozen=True)
class Container:
    """One row of `<runtime> ps --format json`."""

    name: str
    labels: Mapping[str, str]

    @property
    def cluster(self) -> str:
        return self.labels.get(CLUSTER_LABEL, "")


def cgroup_number(value: Any) -> int:
    text = str(value or "").lstrip("v")
    return int(text) if text.isdigit() else 0


def _labels(value: Any) -> dict[str, str]:
    """Labels as podman prints them (a map) or nerdctl/docker do ("k=v,k2=v2"; a value may
    itself hold commas, e.g. nerdctl/ports' JSON: those pieces belong to the previous label)."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    out: dict[str, str] = {}
    last = ""
    for piece in str(value or "").split(","):
        key, eq, val = piece.partition("=")
        if eq and key and not key.startswith(('"', "{", "[", " ")):
            out[key] = val
            last = key
        elif last:
            out[last] += "," + piece
    return out


def _first(value: Any) -> str:
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return str(value or "")


def parse_ps(text: str) -> list[Container]:
    """`ps --format json`: podman prints one JSON array, nerdctl and docker one object a line."""
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        items = json.loads(text)
    else:
        items = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [Container(_first(i.get("Names")), _labels(i.get("Labels"))) for i in items]


class Provider:
    """A runtime kind drives (KIND_EXPERIMENTAL_PROVIDER=<name>)."""

    name: ClassVar[str] = "abstract"
    binary: ClassVar[str] = ""
    info_format: ClassVar[str] = "{{json .}}"   # kind's providers/nerdctl/provider.go
    daemon_fix: ClassVar[str] = ""

    def __init__(self, runner: Runner, env: Optional[Mapping[str, str]] = None) -> None:
        self.runner = runner
        self.added = dict(env) if env else {}   # e.g. a job-scoped runtime's environment
        self._info: Optional[RuntimeInfo] = None

    @property
    def env(self) -> dict[str, str]:
        """What the runtime's commands get on top of the runner's environment: `added`, and
        PATH (at call time: the runner's, e.g. with the bypass4netns shim) with sbin_path()."""
        env = dict(self.added)
        env["PATH"] = sbin_path(env.get("PATH") or self.runner.extra_env.get("PATH")
                                or os.environ.get("PATH", ""))
        return env

    def kind_env(self) -> dict[str, str]:
        """kind runs the runtime: it gets the provider's name and the runtime's PATH."""
        return {"KIND_EXPERIMENTAL_PROVIDER": self.name, "PATH": self.env["PATH"]}

    # ------------------------------------------------------------------ info, version
    def info_argv(self) -> list[str]:
        return [self.binary, "info", "--format", self.info_format]

    def info(self, *, timeout: float = 60, fix: str = "", refresh: bool = False) -> RuntimeInfo:
        """The runtime's info (asked once, then cached); raises RUNTIME_UNAVAILABLE."""
        if self._info is None or refresh:
            try:
                res = self.runner.run(self.info_argv(), env=self.env, timeout=timeout,
                                      what=f"{self.binary} info",
                                      code=Exit.RUNTIME_UNAVAILABLE,
                                      fix=fix or self.daemon_fix)
            except CommandTimeout as exc:  # a runtime that does not answer is unreachable
                raise CommandFailed(exc.cause, exc.fix, code=Exit.RUNTIME_UNAVAILABLE,
                                    argv=exc.argv, stdout=exc.stdout,
                                    stderr=exc.stderr) from exc
            self._info = self.parse_info(res.stdout)
        return self._info

    def check_daemon(self) -> None:
        """Fail fast when the runtime cannot be reached (rootless daemon not running)."""
        self.info()

    @classmethod
    def parse_info(cls, text: str) -> RuntimeInfo:
        """docker's info JSON, which nerdctl copies (pkg/inspecttypes/dockercompat Info)."""
        data = json_object(text)
        return RuntimeInfo(
            rootless=any("name=rootless" in str(s) for s in data.get("SecurityOptions") or []),
            cgroup_version=cgroup_number(data.get("CgroupVersion")),
            cgroup_manager=str(data.get("CgroupDriver") or ""),
            version=str(data.get("ServerVersion") or ""))

    def versions(self, *, timeout: float = 10) -> Optional[RuntimeVersion]:
        """`version --format json` (None when the runtime is missing or says nothing)."""
        try:
            res = self.runner.run([self.binary, "version", "--format", "json"], env=self.env,
                                  timeout=timeout, check=False)
            data = json_object(res.stdout)
        except KsiError:   # not installed, timed out, no JSON
            return None
        client = data.get("Client") or {}
        server = data.get("Server") or {}
        parts = {str(c.get("Name")): str(c.get("Version"))
                 for c in server.get("Components") or [] if isinstance(c, dict)}
        if server.get("Version") and not parts:
            parts[self.name] = str(server["Version"])
        return RuntimeVersion(str(client.get("Version") or ""), parts)

    # ------------------------------------------------------------------ containers
    def containers(self, label_filter: str, *, running: bool = False) -> list[Container]:
        """`ps -a` (running: `ps`) filtered by one label, parsed from JSON."""
        res = self.runner.run(
            [self.binary, "ps", *([] if running else ["-a"]), "--filter",
             f"label={label_filter}", "--format", "json"],
            env=self.env, timeout=60, what=f"{self.binary} ps",
            code=Exit.RUNTIME_UNAVAILABLE, fix=self.daemon_fix)
        try:
            return parse_ps(res.stdout)
        except (ValueError, AttributeError) as exc:
            raise KsiError(f"{self.binary} ps --format json printed no JSON ({exc})",
                           f"check '{self.binary} ps --format json' by hand",
                           code=Exit.RUNTIME_UNAVAILABLE) from exc

    def node_containers(self, cluster: str) -> list[str]:
        """Names of the node containers of one kind cluster."""
        return [c.name for c in self.containers(f"{CLUSTER_LABEL}={cluster}")]

    def all_kind_containers(self, *, running: bool = False) -> list[tuple[str, str]]:
        """(container, cluster) for every kind node container this runtime shows."""
        return [(c.name, c.cluster) for c in self.containers(CLUSTER_LABEL, running=running)]

    def container_pid(self, name: str, *, timeout: float = 30) -> Optional[int]:
        """The main PID of a running container, from `inspect`'s JSON (as the runtime sees
        it: inside a rootlesskit PID namespace, see cgroups.host_pid); None when unknown."""
        res = self.runner.run([self.binary, "inspect", name], env=self.env, timeout=timeout,
                              check=False)
        try:
            data = json.loads(res.stdout) if res.returncode == 0 else []
            pid = (data[0].get("State") or {}).get("Pid") if data else None
        except (ValueError, AttributeError, IndexError, KeyError):
            return None
        return pid if isinstance(pid, int) and pid > 0 else None

    def kill(self, names: list[str]) -> None:
        """SIGKILL containers (a node whose cluster is discarded needs no graceful stop)."""
        if names:
            self.runner.run([self.binary, "kill", *names], env=self.env, timeout=60,
                            what=f"{self.binary} kill", code=Exit.TEARDOWN_INCOMPLETE)

    def node_volumes(self, nodes: list[str]) -> list[str]:
        """Volumes kind made for these nodes that outlive them (podman only)."""
        return []

    def remove_volumes(self, volumes: list[str]) -> None:
        if volumes:
            self.runner.run([self.binary, "volume", "rm", "--force", *volumes], env=self.env,
                            timeout=120, what=f"{self.binary} volume rm",
                            code=Exit.TEARDOWN_INCOMPLETE)

    def remove(self, names: list[str]) -> None:
        if names:
            self.runner.run([self.binary, "rm", "-f", "-v", *names], env=self.env, timeout=120,
                            what=f"{self.binary} rm", code=Exit.TEARDOWN_INCOMPLETE)

    def network_exists(self, name: str) -> bool:
        res = self.runner.run([self.binary, "network", "inspect", name], env=self.env,
                              timeout=60, check=False)
        return res.returncode == 0

    def network_subnets(self, name: str = "kind", *, timeout: float = 30) -> list[str]:
        """IPv4 subnets of a runtime network, from `network inspect`'s JSON (docker's and
        nerdctl's IPAM.Config, podman's subnets); [] when it does not exist."""
        try:
            res = self.runner.run([self.binary, "network", "inspect", name], env=self.env,
                                  timeout=timeout, check=False)
            data = json.loads(res.stdout) if res.returncode == 0 else []
        except (KsiError, ValueError):
            return []
        out = []
        for net in data if isinstance(data, list) else [data]:
            if not isinstance(net, dict):
                continue
            configs = [*((net.get("IPAM") or {}).get("Config") or []),
                       *(net.get("subnets") or [])]
            for c in configs:
                sub = c.get("Subnet") or c.get("subnet") if isinstance(c, dict) else None
                try:
                    net4 = ipaddress.ip_network(sub, strict=False) if sub else None
                    if net4 is not None and net4.version == 4 and str(net4) not in out:
                        out.append(str(net4))
                except ValueError:
                    continue
        return out

    def image_present(self, image: str) -> bool:
        res = self.runner.run([self.binary, "image", "inspect", image], env=self.env,
                              timeout=60, check=False)
        return res.returncode == 0

    def pull(self, image: str) -> None:
        self.runner.run([self.binary, "pull", image], env=self.env, timeout=1800,
                        what=f"{self.binary} pull {image}", code=Exit.IMAGE_FAILED,
                        fix="check the image name and the network, or save it on a machine "
                        "that can pull")

    def save_archive(self, image: str, path: str) -> None:
        self.runner.run([self.binary, "save", "-o", path, image], env=self.env, timeout=1800,
                        what=f"{self.binary} save {image}", code=Exit.IMAGE_FAILED,
                        fix=f"check that {image} exists: '{self.binary} images'")

    def load_archive(self, path: str) -> None:
        self.runner.run([self.binary, "load", "-i", path], env=self.env, timeout=900,
                        what=f"{self.binary} load -i {path}", code=Exit.IMAGE_FAILED,
                        fix="check the archive (e.g. re-create it with 'ksi images save')")


def json_object(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise KsiError(f"the runtime printed no JSON ({exc})", "check the runtime by hand",
                       code=Exit.RUNTIME_UNAVAILABLE) from exc
    if not isinstance(data, dict):
        raise KsiError("the runtime's JSON is not an object", "check the runtime by hand",
                       code=Exit.RUNTIME_UNAVAILABLE)
    return data
