"""Emulated ``kind`` (behaviour of kind v0.30, kubernetes-sigs/kind).

kind drives the container runtime through PATH exactly like the real provider
(pkg/cluster/internal/providers/{nerdctl,podman}/provision.go, provider.go), so a
wrapper placed first on PATH can intercept ``nerdctl run``.  The emulated API
server is registered in the shared state (clusters.py) once "kubeadm init" is done.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time

from . import cli, clusters, faults, kubeconfig, state

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

KIND_DEFAULT = "0.30.0"
# kind pkg/apis/config/defaults/image.go (v0.30.0)
DEFAULT_IMAGE = (
    "kindest/node:v1.34.0@sha256:7416a61b42b1662ca6ca89f02028ac133a309a2a30ba309614e8ec94d976dc5a"
)
CLUSTER_LABEL = "io.x-k8s.kind.cluster"
ROLE_LABEL = "io.x-k8s.kind.role"
# kind pkg/cluster/internal/providers/common/cgroups.go NodeReachedCgroupsReadyRegexp
LOGLINE_RE = "Reached target .*Multi-User System.*|detected cgroup v1"
VALID_NAME = re.compile(r"^[a-z0-9.-]+$")  # pkg/internal/apis/config/validate.go


class KindError(Exception):
    """An error as kind prints it: ``ERROR: <msg>`` (+ ``Command Output:``)."""

    def __init__(self, msg: str, output: Optional[str] = None) -> None:
        super().__init__(msg)
        self.msg = msg
        self.output = output

    def wrap(self, prefix: str) -> KindError:
        return KindError(prefix + ": " + self.msg, self.output)


class Logger:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def info(self, s: str) -> None:
        if not self.quiet:
            state.err(s)

    # kind pkg/internal/cli/status.go (non-TTY writer)
    def start(self, s: str) -> None:
        self.info(f" • {s}  ...")

    def end(self, s: str, ok: bool) -> None:
        self.info(" {} {}".format("✓" if ok else "✗", s))


# --------------------------------------------------------------------- runtime calls


class Provider:
    def __init__(self, name: str, log: Logger) -> None:
        self.name = name  # docker | nerdctl | podman
        self.binary = name
        self.log = log

    def run(self, args: List[str], stdin: Optional[bytes] = None) -> Tuple[int, str, str]:
        cmd = [self.binary] + args
        try:
            p = subprocess.run(cmd, input=stdin, capture_output=True)
        except FileNotFoundError:
            raise KindError(
                f'command "{quote_cmd(cmd)}" failed with error: exec: "{self.binary}": executable '
                f"file not found in $PATH",
                "",
            ) from None
        out = p.stdout.decode(errors="replace")
        errtxt = p.stderr.decode(errors="replace")
        if p.returncode != 0:
            # kind pkg/exec/types.go RunError: command "%s" failed with error: %v
            raise KindError(
                f'command "{quote_cmd(cmd)}" failed with error: exit status {p.returncode}',
                errtxt + out,
            )
        return p.returncode, out, errtxt

    def lines(self, args: List[str]) -> List[str]:
        _, out, _ = self.run(args)
        return [x for x in out.splitlines() if x != ""]

    def info(self) -> Dict[str, Any]:
        import json

        if self.name == "podman":
            try:
                _, out, _ = self.run(["info", "--format", "json"])
            except KindError as e:
                # providers/podman/provider.go:
                # "failed to get podman info (podman info --format json): %q"
                raise KindError(
                    "failed to get podman info (podman info --format json): {}".format(
                        go_quote(e.output or "")
                    ),
                    None,
                ).wrap_inner(e) from e
            d = json.loads(out or "{}")
            host = d.get("host", {})
            ctrls = host.get("cgroupControllers") or []
            rootless = bool(host.get("security", {}).get("rootless"))
            # podman < 4 reports no controllers: kind assumes all, and warns when rootless
            # (kind v0.33.0 pkg/cluster/internal/providers/podman/provider.go info)
            ver = str((d.get("version") or {}).get("Version") or "0")
            old = int((re.findall(r"\d+", ver) or ["0"])[0]) < 4
            return {
                "rootless": rootless,
                "cgroup2": host.get("cgroupVersion") == "v2",
                "memory": old or "memory" in ctrls,
                "pids": old or "pids" in ctrls,
                "cpu": old or "cpu" in ctrls,
                "warning": "Cgroup controller detection is not implemented for Podman. If you "
                'see cgroup-related errors, you might need to set systemd property "Delegate=yes"'
                ", see https://kind.sigs.k8s.io/docs/user/rootless/" if old and rootless else "",
            }
        try:
            _, out, _ = self.run(["info", "--format", "{{json .}}"])
        except KindError as e:
            raise e.wrap(f"failed to get {self.name} info") from e
        d = json.loads(out or "{}")
        none = d.get("CgroupDriver") == "none"
        sec = ",".join(d.get("SecurityOptions") or [])
        return {
            "rootless": "name=rootless" in sec,
            "cgroup2": str(d.get("CgroupVersion")) == "2",
            "memory": bool(d.get("MemoryLimit")) and not none,
            "pids": bool(d.get("PidsLimit")) and not none,
            "cpu": bool(d.get("CPUShares")) and not none,
        }

    def list_nodes(self, cluster: str) -> List[str]:
        try:
            return self.lines(
                [
                    "ps",
                    "-a",
                    "--filter",
                    f"label={CLUSTER_LABEL}={cluster}",
                    "--format",
                    "{{.Names}}",
                ]
            )
        except KindError as e:
            raise e.wrap("failed to list nodes") from e

    def list_clusters(self) -> List[str]:
        try:
            names = self.lines(
                [
                    "ps",
                    "-a",
                    "--filter",
                    "label=" + CLUSTER_LABEL,
                    "--format",
                    f'{{{{index .Labels "{CLUSTER_LABEL}"}}}}',
                ]
            )
        except KindError as e:
            raise e.wrap("failed to list clusters") from e
        return sorted(set(names))

    def delete_nodes(self, nodes: List[str]) -> None:
        if not nodes:
            return
        if faults.should_fail("kind", "delete"):
            cmd = [self.binary, "rm", "-f", "-v"] + nodes
            raise KindError(
                f'failed to delete nodes: command "{quote_cmd(cmd)}" failed with error: exit '
                f"status 1",
                "emulated failure (KSI_EMU_FAIL=kind:delete)\n",
            )
        if self.name == "nerdctl":
            # providers/nerdctl/provider.go DeleteNodes: update --restart=no, stop, wait, rm -f -v
            for args, what in (
                (["update", "--restart=no"], "failed to update restart policy to 'no'"),
                (["stop"], "failed to stop nodes"),
                (["wait"], "failed to wait for node exit"),
            ):
                try:
                    self.run(args + nodes)
                except KindError as e:
                    raise e.wrap(what) from e
        try:
            self.run(["rm", "-f", "-v"] + nodes)
        except KindError as e:
            raise e.wrap("failed to delete nodes") from e
        if self.name == "podman":
            # providers/podman/provider.go DeleteNodes: then the volumes labelled with each
            # node's name (getVolumes: volume ls --filter label=<node> --quiet; deleteVolumes)
            vols: List[str] = []
            for node in nodes:
                _, out, _ = self.run(["volume", "ls", "--filter", f"label={node}", "--quiet"])
                vols += [v for v in out.split() if v]
            if vols:
                self.run(["volume", "rm", "--force"] + vols)


def _wrap_inner(self: KindError, inner: KindError) -> KindError:
    self.output = inner.output
    return self


KindError.wrap_inner = _wrap_inner  # type: ignore[attr-defined]


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def quote_cmd(cmd: List[str]) -> str:
    return " ".join(shlex.quote(a) for a in cmd)


def go_quote(s: str) -> str:
    import json

    return json.dumps(s)


def select_provider(log: Logger) -> Provider:
    """kind pkg/internal/runtime/runtime.go GetDefault + pkg/cluster/provider.go
    DetectNodeProvider (docker, then nerdctl/finch, then podman; default docker)."""
    p = os.environ.get("KIND_EXPERIMENTAL_PROVIDER", "")
    if p == "podman":
        log.info("using podman due to KIND_EXPERIMENTAL_PROVIDER")
        log.info("enabling experimental podman provider")
        return Provider("podman", log)
    if p == "docker":
        log.info("using docker due to KIND_EXPERIMENTAL_PROVIDER")
        return Provider("docker", log)
    if p in ("nerdctl", "finch", "nerdctl.lima"):
        log.info(f"using {p} due to KIND_EXPERIMENTAL_PROVIDER")
        prov = Provider("nerdctl", log)
        prov.binary = p
        return prov
    if p:
        log.info(f"ignoring unknown value {go_quote(p)} for KIND_EXPERIMENTAL_PROVIDER")
    for binary, prefix in (
        ("docker", "Docker version"),
        ("nerdctl", "nerdctl version"),
        ("finch", "finch version"),
        ("podman", "podman version"),
    ):
        try:
            r = subprocess.run(
                [binary, "-v"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=20
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        lines = r.stdout.decode(errors="replace").splitlines()
        if r.returncode == 0 and len(lines) == 1 and lines[0].startswith(prefix):
            if binary == "podman":
                log.info("enabling experimental podman provider")
                return Provider("podman", log)
            prov = Provider("nerdctl" if binary in ("nerdctl", "finch") else "docker", log)
            prov.binary = binary
            return prov
    return Provider("docker", log)


# --------------------------------------------------------------------- config

_T_CLUSTER = "v1alpha4.Cluster"
SCHEMA: Dict[str, Dict[str, Any]] = {
    "v1alpha4.Cluster": {
        "kind": "str",
        "apiVersion": "str",
        "name": "str",
        "featureGates": ("map", "bool"),
        "runtimeConfig": ("map", "str"),
        "nodes": ("list", "v1alpha4.Node"),
        "networking": "v1alpha4.Networking",
        "kubeadmConfigPatches": ("list", "str"),
        "kubeadmConfigPatchesJSON6902": ("list", "v1alpha4.PatchJSON6902"),
        "containerdConfigPatches": ("list", "str"),
        "containerdConfigPatchesJSON6902": ("list", "str"),
    },
    "v1alpha4.Node": {
        "role": "str",
        "image": "str",
        "labels": ("map", "str"),
        "extraMounts": ("list", "v1alpha4.Mount"),
        "extraPortMappings": ("list", "v1alpha4.PortMapping"),
        "kubeadmConfigPatches": ("list", "str"),
        "kubeadmConfigPatchesJSON6902": ("list", "v1alpha4.PatchJSON6902"),
    },
    "v1alpha4.Networking": {
        "ipFamily": "str",
        "apiServerPort": "int32",
        "apiServerAddress": "str",
        "podSubnet": "str",
        "serviceSubnet": "str",
        "disableDefaultCNI": "bool",
        "kubeProxyMode": "str",
        "dnsSearch": ("list", "str"),
    },
    "v1alpha4.Mount": {
        "containerPath": "str",
        "hostPath": "str",
        "readOnly": "bool",
        "selinuxRelabel": "bool",
        "propagation": "str",
    },
    "v1alpha4.PortMapping": {
        "containerPort": "int32",
        "hostPort": "int32",
        "listenAddress": "str",
        "protocol": "str",
    },
    "v1alpha4.PatchJSON6902": {"group": "str", "version": "str", "kind": "str", "patch": "str"},
}


def _check(node: Any, typ: Any, errs: List[str]) -> None:
    """gopkg.in/yaml.v3 Decoder.KnownFields(true) errors (kind encoding/load.go)."""
    import yaml

    line = node.start_mark.line + 1
    if isinstance(typ, tuple):
        kind, sub = typ
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return
        if kind == "list":
            if not isinstance(node, yaml.SequenceNode):
                errs.append(
                    f"line {line}: cannot unmarshal {_short_tag(node)} `{_val(node)}` into "
                    f"[]{_goname(sub)}"
                )
                return
            for item in node.value:
                _check(item, sub, errs)
        else:
            if not isinstance(node, yaml.MappingNode):
                errs.append(
                    f"line {line}: cannot unmarshal {_short_tag(node)} `{_val(node)}` into "
                    f"map[string]{_goname(sub)}"
                )
                return
            for _, v in node.value:
                _check(v, sub, errs)
        return
    if typ in SCHEMA:
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return
        if not isinstance(node, yaml.MappingNode):
            errs.append(
                f"line {line}: cannot unmarshal {_short_tag(node)} `{_val(node)}` into {typ}"
            )
            return
        fields = SCHEMA[typ]
        for k, v in node.value:
            key = k.value
            if key not in fields:
                errs.append(f"line {k.start_mark.line + 1}: field {key} not found in type {typ}")
                continue
            _check(v, fields[key], errs)
        return
    if not isinstance(node, yaml.ScalarNode):
        errs.append(f"line {line}: cannot unmarshal {_short_tag(node)} into {_goname(typ)}")
        return
    if node.tag == "tag:yaml.org,2002:null":
        return
    if typ == "int32" and node.tag != "tag:yaml.org,2002:int":
        errs.append(f"line {line}: cannot unmarshal {_short_tag(node)} `{node.value}` into int32")
    elif typ == "bool" and node.tag != "tag:yaml.org,2002:bool":
        errs.append(f"line {line}: cannot unmarshal {_short_tag(node)} `{node.value}` into bool")


def _short_tag(node: Any) -> str:
    t = node.tag.rsplit(":", 1)[-1]
    return "!!" + t


def _val(node: Any) -> str:
    return node.value if isinstance(node.value, str) else "..."


def _goname(t: Any) -> str:
    return {"str": "string", "int32": "int32", "bool": "bool"}.get(t, t)


def load_config(raw: bytes) -> Dict[str, Any]:
    """kind pkg/internal/apis/config/encoding/load.go Parse."""
    import yaml

    try:
        docs = yaml.safe_load(raw) or {}
    except yaml.YAMLError as e:
        raise KindError(
            f"could not determine kind / apiVersion for config: yaml: {str(e).splitlines()[0]}"
        ) from e
    if not isinstance(docs, dict):
        docs = {}
    api = str(docs.get("apiVersion", "") or "")
    kind = str(docs.get("kind", "") or "")
    if api not in ("kind.x-k8s.io/v1alpha4",):
        if api == "kind.sigs.k8s.io/v1alpha3":
            raise KindError(f"unknown apiVersion: {api}")  # emulator supports v1alpha4 only
        raise KindError(f"unknown apiVersion: {api}")
    if kind != "Cluster":
        raise KindError(f"unknown kind {api} for apiVersion: {kind}")
    node = yaml.compose(raw)
    errs: List[str] = []
    _check(node, _T_CLUSTER, errs)
    if errs:
        raise KindError("unable to decode config: yaml: unmarshal errors:\n  " + "\n  ".join(errs))
    return docs


def defaults(cfg: Dict[str, Any], name_override: str, image_override: str) -> Dict[str, Any]:
    """v1alpha4 SetDefaultsCluster + create.fixupOptions."""
    c = dict(cfg)
    if name_override:
        c["name"] = name_override
    if not c.get("name"):
        c["name"] = "kind"
    nodes = [dict(n or {}) for n in (c.get("nodes") or [{"role": "control-plane"}])]
    for n in nodes:
        n.setdefault("role", "control-plane")
        if image_override:
            n["image"] = image_override
        if not n.get("image"):
            n["image"] = DEFAULT_IMAGE
        pms = []
        for raw_pm in n.get("extraPortMappings") or []:
            pm = dict(raw_pm or {})
            pm.setdefault("listenAddress", "0.0.0.0")
            pm["listenAddress"] = pm["listenAddress"] or "0.0.0.0"
            pm["protocol"] = pm.get("protocol") or "TCP"
            pm.setdefault("hostPort", 0)
            pm.setdefault("containerPort", 0)
            pms.append(pm)
        n["extraPortMappings"] = pms
        n["extraMounts"] = [dict(m or {}) for m in (n.get("extraMounts") or [])]
    c["nodes"] = nodes
    net = dict(c.get("networking") or {})
    net.setdefault("ipFamily", "ipv4")
    net["ipFamily"] = net["ipFamily"] or "ipv4"
    fam = net["ipFamily"]
    if not net.get("apiServerAddress"):
        net["apiServerAddress"] = "::1" if fam == "ipv6" else "127.0.0.1"
    net.setdefault("apiServerPort", 0)
    if not net.get("podSubnet"):
        net["podSubnet"] = {
            "ipv6": "fd00:10:244::/56",
            "dual": "10.244.0.0/16,fd00:10:244::/56",
        }.get(fam, "10.244.0.0/16")
    if not net.get("serviceSubnet"):
        net["serviceSubnet"] = {
            "ipv6": "fd00:10:96::/112",
            "dual": "10.96.0.0/16,fd00:10:96::/112",
        }.get(fam, "10.96.0.0/16")
    net["kubeProxyMode"] = net.get("kubeProxyMode") or "iptables"
    net.setdefault("disableDefaultCNI", False)
    c["networking"] = net
    return c


def _aggregate(errs: List[str]) -> str:
    # kind pkg/errors aggregate (k8s utilerrors): one -> itself, else "[a, b]"
    return errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]"


DUAL_MSG = (
    "expected one (IPv4 or IPv6) CIDR or two CIDRs from each family for dual-stack networking"
)


def _validate_subnets(s: str, fam: str) -> Optional[str]:
    nets = []
    for part in s.split(","):
        try:
            nets.append(ipaddress.ip_network(part, strict=False))
        except ValueError as e:
            return (
                f'failed to parse cidr value:"{part}" with error: invalid CIDR address: {part}'
                if e
                else ""
            )
    dual = fam == "dual"
    if dual and len(nets) > 2:
        return DUAL_MSG
    if dual and len(nets) == 2 and {n.version for n in nets} != {4, 6}:
        return DUAL_MSG
    if not dual and len(nets) > 1:
        return "only one CIDR allowed for single-stack networking"
    if fam == "ipv4" and nets[0].version != 4:
        return "expected IPv4 CIDR for IPv4 family"
    if fam == "ipv6" and nets[0].version != 6:
        return "expected IPv6 CIDR for IPv6 family"
    return None


def validate(c: Dict[str, Any]) -> None:
    """kind pkg/internal/apis/config/validate.go Cluster.Validate."""
    errs: List[str] = []
    if not VALID_NAME.match(c["name"]):
        errs.append(
            "'{}' is not a valid cluster name, cluster names must match `^[a-z0-9.-]+$`".format(
                c["name"]
            )
        )
    net = c["networking"]
    port = int(net.get("apiServerPort") or 0)
    if port != 0 and (port < -1 or port > 65535):
        errs.append(f"invalid apiServerPort: invalid port number: {port}")
    if net["ipFamily"] not in ("ipv4", "ipv6", "dual"):
        errs.append("invalid ipFamily: {}".format(net["ipFamily"]))
    for key, what in (("podSubnet", "pod"), ("serviceSubnet", "service")):
        e = _validate_subnets(str(net[key]), net["ipFamily"])
        if e:
            errs.append(f"invalid {what} subnet {e}")
    if net["kubeProxyMode"] not in ("iptables", "ipvs", "none", "nftables"):
        errs.append("invalid kubeProxyMode: {}".format(net["kubeProxyMode"]))
    ncp = 0
    for i, n in enumerate(c["nodes"]):
        nerrs: List[str] = []
        if n["role"] not in ("control-plane", "worker"):
            nerrs.append('"{}" is not a valid node role'.format(n["role"]))
        if n["role"] == "control-plane":
            ncp += 1
        for pm in n["extraPortMappings"]:
            for k, what in (
                ("hostPort", "invalid hostPort"),
                ("containerPort", "invalid containerPort"),
            ):
                v = int(pm.get(k) or 0)
                if v < -1 or v > 65535:
                    nerrs.append(f"{what}: invalid port number: {v}")
        dup = _dup_ports(n["extraPortMappings"])
        if dup:
            nerrs.append("invalid portMapping: " + dup)
        if nerrs:
            errs.append(f"invalid configuration for node {i}: {_aggregate(nerrs)}")
    if ncp < 1:
        errs.append("must have at least one control-plane node")
    if errs:
        raise KindError(_aggregate(errs))


def _dup_ports(pms: List[Dict[str, Any]]) -> Optional[str]:
    msg = "port mapping with same listen address, port and protocol already configured"
    bind: Dict[str, List[str]] = {}
    for pm in pms:
        hp = int(pm.get("hostPort") or 0)
        if hp in (0, -1):
            continue
        addr = str(pm.get("listenAddress") or "0.0.0.0")
        try:
            addr = str(ipaddress.ip_address(addr))
        except ValueError:
            addr = "<nil>"
        pp = "{}/{}".format(hp, pm.get("protocol"))
        possible = f"{msg}: {addr}:{pp}"
        if addr == "::":
            addr = "0.0.0.0"
        if pp in bind:
            if addr == "0.0.0.0" and bind[pp]:
                return possible
            if addr in bind[pp] or "0.0.0.0" in bind[pp]:
                return possible
        else:
            bind[pp] = []
        bind[pp].append(addr)
    return None


# --------------------------------------------------------------------- helpers


def node_names(c: Dict[str, Any]) -> List[str]:
    """kind providers/common/namer.go MakeNodeNamer."""
    counter: Dict[str, int] = {}
    names = []
    for n in c["nodes"]:
        counter[n["role"]] = counter.get(n["role"], 0) + 1
        suffix = "" if counter[n["role"]] == 1 else str(counter[n["role"]])
        names.append("{}-{}{}".format(c["name"], n["role"], suffix))
    return names


def friendly(image: str) -> str:
    return image.split("@sha256:", maxsplit=1)[0]


def free_api_port(addr: str) -> int:
    # kind providers/common/getport.go GetFreePort (bind :0 and release); the
    # emulator also skips ports that emulated containers on this host "hold".
    from .runtime import free_port, host_ports

    return free_port(addr, "tcp", host_ports())


def run_args(
    prov: Provider, c: Dict[str, Any], node: Dict[str, Any], name: str, api_port: int
) -> List[str]:
    cluster = c["name"]
    fam = c["networking"]["ipFamily"]
    rootless_fuse = os.environ.get("KSI_EMU_ROOTLESS", "1") != "0"
    if prov.name == "podman":
        var_volume = f"{name}-var"
        args = [
            "--hostname",
            name,
            "--label",
            "{}={}".format(ROLE_LABEL, node["role"]),
            "--privileged",
            "--tmpfs",
            "/tmp",
            "--tmpfs",
            "/run",
            "--volume",
            f"{var_volume}:/var:suid,exec,dev",
            "--volume",
            "/lib/modules:/lib/modules:ro",
            "-e",
            "KIND_EXPERIMENTAL_CONTAINERD_SNAPSHOTTER",
            "--detach",
            "--tty",
            "--net",
            "kind",
            "--label",
            f"{CLUSTER_LABEL}={cluster}",
            "-e",
            "container=podman",
            "--cgroupns=private",
        ]
    else:
        args = [
            "--hostname",
            name,
            "--label",
            "{}={}".format(ROLE_LABEL, node["role"]),
            "--privileged",
            "--security-opt",
            "seccomp=unconfined",
            "--security-opt",
            "apparmor=unconfined",
            "--tmpfs",
            "/tmp",
            "--tmpfs",
            "/run",
            "--volume",
            "/var",
            "--volume",
            "/lib/modules:/lib/modules:ro",
            "-e",
            "KIND_EXPERIMENTAL_CONTAINERD_SNAPSHOTTER",
            "--detach",
            "--tty",
            "--label",
            f"{CLUSTER_LABEL}={cluster}",
            "--net",
            "kind",
            "--restart=on-failure:1",
            "--init=false",
        ]
    if fam in ("ipv6", "dual"):
        args += [
            "--sysctl=net.ipv6.conf.all.disable_ipv6=0",
            "--sysctl=net.ipv6.conf.all.forwarding=1",
        ]
    if rootless_fuse:
        args += ["--device", "/dev/fuse"]
    for m in node["extraMounts"]:
        hp = str(m.get("hostPath", ""))
        if not os.path.isabs(hp):
            hp = os.path.abspath(hp)
        bind = "{}:{}".format(hp, m.get("containerPath", ""))
        attrs = []
        if m.get("readOnly"):
            attrs.append("ro")
        if m.get("selinuxRelabel"):
            attrs.append("Z")
        prop = m.get("propagation")
        if prop == "Bidirectional":
            attrs.append("rshared")
        elif prop == "HostToContainer":
            attrs.append("rslave")
        if attrs:
            bind += ":" + ",".join(attrs)
        args.append(f"--volume={bind}")
    pms = list(node["extraPortMappings"])
    if node["role"] == "control-plane":
        pms.append(
            {
                "listenAddress": c["networking"]["apiServerAddress"],
                "hostPort": api_port,
                "containerPort": 6443,
                "protocol": "TCP",
            }
        )
    for pm in pms:
        la = pm.get("listenAddress") or ("::" if fam == "ipv6" else "0.0.0.0")
        proto = str(pm.get("protocol") or "TCP")
        if proto not in ("TCP", "UDP", "SCTP"):
            raise KindError(f"unknown port mapping protocol: {proto}")
        hp = int(pm.get("hostPort") or 0)
        if hp == 0:
            hp = free_api_port(la)
        host = f"[{la}]" if ":" in la else la
        if prov.name == "podman":
            hpb = "{}:{}".format(host, "" if hp == -1 else hp)
            args.append("--publish={}:{}/{}".format(hpb, int(pm["containerPort"]), proto.lower()))
        else:
            args.append("--publish={}:{}:{}/{}".format(host, hp, int(pm["containerPort"]), proto))
    if node["role"] == "control-plane":
        args += ["-e", "KUBECONFIG=/etc/kubernetes/admin.conf"]
    # podman's sanitizeImage keeps the digest reference as well
    return args + [node["image"]]


def delete_cluster(prov: Provider, log: Logger, name: str, kubeconfig_path: str) -> None:
    """kind pkg/cluster/internal/delete/delete.go Cluster."""
    nodes = prov.list_nodes(name)
    kerr: Optional[str] = None
    try:
        kubeconfig.remove_kind(name, kubeconfig_path)
    except kubeconfig.KubeconfigError as e:
        kerr = str(e)
        log.info(f"failed to update kubeconfig: {kerr}")
    if nodes:
        prov.delete_nodes(nodes)
        log.info("Deleted nodes: [{}]".format(" ".join(go_quote(n) for n in nodes)))
    for rec in clusters.all_clusters():
        if (rec["name"], rec["host"], rec["uid"], rec["provider"]) == (
            name,
            state.hostname(),
            state.uid(),
            prov.name,
        ):
            clusters.unregister(rec)
    if kerr:
        raise KindError(kerr)


# --------------------------------------------------------------------- commands


def cmd_create_cluster(argv: List[str], log: Logger) -> None:
    s = cli.Spec()
    s.add("name", "-n", "--name")
    s.add("config", "--config")
    s.add("image", "--image")
    s.add("retain", "--retain", kind="bool")
    s.add("wait", "--wait", default="0s")
    s.add("kubeconfig", "--kubeconfig")
    _globals(s)
    vals, pos = _parse(argv, s)
    if pos:
        raise KindError(f'unknown command "{pos[0]}" for "kind create cluster"')
    try:
        wait = cli.parse_duration(cli.get_str(vals, "wait", "0s"))
    except ValueError as e:
        raise KindError(
            'invalid argument "{}" for "--wait" flag: {}'.format(vals["wait"], e)
        ) from e
    prov = select_provider(log)
    kcfg_path = cli.get_str(vals, "kubeconfig")
    try:
        raw_cfg: Dict[str, Any] = {}
        cfg_flag = cli.get_str(vals, "config")
        if cfg_flag:
            if cfg_flag == "-":
                raw = sys.stdin.buffer.read()
            else:
                try:
                    raw = _read(cfg_flag)
                except OSError as e:
                    raise KindError(
                        "error reading file: " + kubeconfig.go_path_error("open", cfg_flag, e)
                    ) from e
            raw_cfg = load_config(raw)
        info = prov.info()
        if info.get("warning"):
            log.info(info["warning"])
        if info["rootless"]:
            if not info["cgroup2"]:
                raise KindError(
                    "running kind with rootless provider requires cgroup v2, see "
                    "https://kind.sigs.k8s.io/docs/user/rootless/"
                )
            if not (info["memory"] and info["pids"] and info["cpu"]):
                raise KindError(
                    "running kind with rootless provider requires setting systemd property "
                    '"Delegate=yes", see https://kind.sigs.k8s.io/docs/user/rootless/'
                )
        elif not info["cgroup2"]:  # create.go validateProvider
            log.info("cgroup v1 is deprecated in Kubernetes and will not be supported in a future "
                     "kind release, please upgrade to cgroup v2")
        name_override = cli.get_str(vals, "name") or os.environ.get("KIND_CLUSTER_NAME", "")
        c = defaults(raw_cfg, name_override, cli.get_str(vals, "image"))
        if prov.list_nodes(c["name"]):
            raise KindError(
                'node(s) already exist for a cluster with the name "{}"'.format(c["name"])
            )
        if len(c["name"]) > 50:
            log.info(
                'WARNING: cluster name "{}" is probably too long, this might not work properly on '
                "some systems".format(c["name"])
            )
        validate(c)
        create(prov, log, c, vals, wait, kcfg_path)
    except KindError as e:
        raise e.wrap("failed to create cluster") from e


def create(
    prov: Provider,
    log: Logger,
    c: Dict[str, Any],
    vals: Dict[str, Any],
    wait: float,
    kcfg_path: str,
) -> None:
    name = c["name"]
    retain = bool(vals["retain"])
    log.info(f'Creating cluster "{name}" ...')

    def fail_and_cleanup(err: KindError) -> None:
        if not retain:
            try:
                delete_cluster(prov, log, name, kcfg_path)
            except KindError:
                pass
        raise err

    # providers/*/images.go ensureNodeImages
    for image in sorted({n["image"] for n in c["nodes"]}):
        step = f"Ensuring node image ({friendly(image)}) 🖼\ufe0f"
        log.start(step)
        try:
            prov.run(["inspect", "--type=image", image])
        except KindError:
            try:
                prov.run(["pull", image])
            except KindError as e:
                log.end(step, False)
                raise e.wrap(f'failed to pull image "{image}"') from e
        log.end(step, True)
    # ensureNetwork: inspect, then create if missing - no lock between the two, so two
    # creates at once on one runtime race (kind v0.33.0 pkg/cluster/internal/providers/
    # {podman,nerdctl}/network.go: ensureNetwork/createNetwork). The subnet is
    # generateULASubnetFromName("kind", 0) = fc00:f853:ccd:e793::/64 for both. nerdctl
    # checks with `network inspect kind --format={{.Name}}` and first reads the MTU of
    # its "bridge" network (getDefaultNetworkMTU: `-o com.docker.network.driver.mtu=N`
    # only when that is a number); podman checks with `network inspect kind`.
    # Fault point kind:network-race: another kind created the network between the two.
    nerdctl = prov.name != "podman"
    try:
        if faults.should_fail("kind", "network-race"):
            raise KindError("raced", "")
        prov.run(["network", "inspect", "kind", *(["--format={{.Name}}"] if nerdctl else [])])
    except KindError:
        argv = ["network", "create", "-d=bridge"]
        if nerdctl:
            try:
                mtu = prov.run(["network", "inspect", "bridge", "-f",
                                '{{ index .Options "com.docker.network.driver.mtu" }}'])[1].strip()
            except KindError:
                mtu = ""
            if mtu.isdigit() and int(mtu) > 0:
                argv += ["-o", f"com.docker.network.driver.mtu={mtu}"]
        argv += ["--ipv6", "--subnet", "fc00:f853:ccd:e793::/64", "kind"]
        try:
            prov.run(argv)
        except KindError as e:
            raise e.wrap(f"failed to ensure {prov.name} network") from e
    names = node_names(c)
    step = "Preparing nodes {}".format("📦 " * len(c["nodes"]))
    log.start(step)
    api_addr = c["networking"]["apiServerAddress"]
    api_port = int(c["networking"].get("apiServerPort") or 0)
    if api_port == 0:
        api_port = free_api_port(api_addr)
    for node, nname in zip(c["nodes"], names):
        try:
            if prov.name == "podman":
                # providers/podman/provision.go runArgsForNode -> createAnonymousVolume: a volume
                # labelled "<node>=true" (podman filters on label keys only). The real volume
                # is anonymous (random name); the emulator names it <node>-var.
                prov.run(["volume", "create", "--label", f"{nname}=true", f"{nname}-var"])
            args = ["run", "--name", nname] + run_args(prov, c, node, nname, api_port)
            prov.run(args)
            prov.run(["logs", "-f", nname])
            if faults.should_fail("kind", "logline"):
                faults.delay("kind", "logline")
                raise KindError(f'could not find a log line that matches "{LOGLINE_RE}"')
        except KindError as e:
            log.end(step, False)
            fail_and_cleanup(e)
    log.end(step, True)
    log.start("Writing configuration 📜")
    log.end("Writing configuration 📜", True)
    step = "Starting control-plane 🕹️"
    log.start(step)
    cp = names[0]
    faults.delay("kind", "create")
    kubeadm = [
        "exec",
        "--privileged",
        cp,
        "kubeadm",
        "init",
        "--skip-phases=preflight",
        "--config=/kind/kubeadm.conf",
        "--skip-token-print",
        "--v=6",
    ]
    try:
        if faults.should_fail("kind", "create"):
            raise KindError(
                f'command "{quote_cmd([prov.binary] + kubeadm)}" failed with error: exit status 1',
                "I1128 10:00:00.000000     231 initconfiguration.go:261] loading configuration "
                "from "
                '"/kind/kubeadm.conf"\n[init] Using Kubernetes version: '
                "v1.34.0\n[wait-control-plane] "
                "Waiting for the kubelet to boot up the control plane as static Pods from "
                "directory "
                '"/etc/kubernetes/manifests"\n[kubelet-check] The kubelet is not healthy after '
                "4m0s\n"
                "error execution phase wait-control-plane: could not initialize a Kubernetes "
                "cluster\n",
            )
        prov.run(kubeadm)
    except KindError as e:
        log.end(step, False)
        fail_and_cleanup(e.wrap("failed to init node with kubeadm"))
    # the API server is up: register it
    now = time.time()
    insp = (
        prov.lines(["inspect", "--format", "{{ .NetworkSettings.IPAddress }}", cp])
        if prov.name != "docker"
        else []
    )
    node_ip = insp[0] if insp else "172.18.0.2"
    rec = {
        "id": clusters.cluster_id(state.hostname(), prov.name, state.uid(), name),
        "name": name,
        "host": state.hostname(),
        "uid": state.uid(),
        "provider": prov.name,
        "image": c["nodes"][0]["image"],
        "config": c,
        "nodes": [
            {"name": n, "role": node["role"], "labels": node.get("labels") or {}}
            for n, node in zip(names, c["nodes"])
        ],
        "extraMounts": [m for n in c["nodes"] for m in n["extraMounts"]],
        "portMappings": [pm for n in c["nodes"] for pm in n["extraPortMappings"]],
        "api_address": api_addr,
        "api_port": api_port,
        "node_ip": node_ip,
        "sans": clusters.sans_for(name, api_addr, node_ip),
        "created": now,
        "ready_at": now + state.env_float("KSI_EMU_READY_AFTER", 0.0),
        "ca_serial": f"{name}-{now:f}",
        "client_serial": f"admin-{now:f}",
        "images_loaded": [],
        "containerdConfigPatches": c.get("containerdConfigPatches") or [],
    }
    clusters.register(rec)
    log.end(step, True)
    if not c["networking"].get("disableDefaultCNI"):
        log.start("Installing CNI 🔌")
        log.end("Installing CNI 🔌", True)
    log.start("Installing StorageClass 💾")
    log.end("Installing StorageClass 💾", True)
    if len(names) > 1:
        log.start("Joining worker nodes 🚜")
        log.end("Joining worker nodes 🚜", True)
    if wait > 0:
        # create/actions/waitforready/waitforready.go
        step = f"Waiting ≤ {cli.format_duration(wait)} for control-plane = Ready ⏳"
        log.start(step)
        start = time.time()
        remaining = rec["ready_at"] - start
        if remaining <= wait:
            if remaining > 0:
                time.sleep(remaining)
            log.end(step, True)
            log.info(
                f" • Ready after {cli.format_duration(round(max(0.0, time.time() - start)))} 💚"
            )
        else:
            time.sleep(wait)
            log.end(step, False)
            log.info(" • WARNING: Timed out waiting for Ready ⚠️")
    # export kubeconfig with backoff for locking failures: 0/1/50/100 ms around ONE O_EXCL
    # lock attempt each (kind v0.33.0 pkg/cluster/internal/create/create.go, lock.go), so
    # kind tolerates ~150 ms of contention
    server = endpoint(prov, cp)
    kc = kubeconfig.kind_config(name, server, rec["ca_serial"], rec["client_serial"])
    last: Optional[Exception] = None
    for b in (0, 0.001, 0.05, 0.1):
        time.sleep(b)
        try:
            kubeconfig.write_merged(kc, kcfg_path)
            last = None
            break
        except kubeconfig.KubeconfigError as e:
            last = e
    if last is not None:
        raise KindError(str(last))
    ctx = "kind-" + name
    log.info(f'Set kubectl context to "{ctx}"')
    sample = f"kubectl cluster-info --context {ctx}"
    if kcfg_path:
        sample += " --kubeconfig " + shlex.quote(kcfg_path)
    log.info("You can now use your cluster with:\n\n" + sample)
    log.info("")
    log.info("Have a nice day! 👋")


def endpoint(prov: Provider, cp: str) -> str:
    """providers/nerdctl/provider.go GetAPIServerEndpoint (podman: json .NetworkSettings.Ports)."""
    import json

    try:
        if prov.name == "podman":
            lines = prov.lines(["inspect", "--format", "{{ json .NetworkSettings.Ports }}", cp])
            ports = json.loads(lines[0])
            pm = ports["6443/tcp"][0]
            host, port = pm.get("HostIp") or "127.0.0.1", pm["HostPort"]
        else:
            lines = prov.lines(
                [
                    "inspect",
                    "--format",
                    '{{ with (index (index .NetworkSettings.Ports "6443/tcp") 0) }}'
                    '{{ printf "%s\\t%s" .HostIp .HostPort }}{{ end }}',
                    cp,
                ]
            )
            host, port = lines[0].split("\t")
    except KindError as e:
        raise e.wrap("failed to get api server port") from e
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}:{port}"


def cmd_delete(argv: List[str], log: Logger) -> None:
    if not argv or argv[0] not in ("cluster", "clusters"):
        raise KindError('unknown command "{}" for "kind delete"'.format(argv[0] if argv else ""))
    s = cli.Spec()
    s.add("name", "-n", "--name")
    s.add("kubeconfig", "--kubeconfig")
    s.add("all", "-A", "--all", kind="bool")
    _globals(s)
    vals, pos = _parse(argv[1:], s)
    name = cli.get_str(vals, "name") or os.environ.get("KIND_CLUSTER_NAME", "") or "kind"
    prov = select_provider(log)
    kc = cli.get_str(vals, "kubeconfig")
    faults.delay("kind", "delete")
    if argv[0] == "cluster":
        if pos:
            raise KindError(f'unknown command "{pos[0]}" for "kind delete cluster"')
        log.info(f'Deleting cluster "{name}" ...')
        try:
            delete_cluster(prov, log, name, kc)
        except KindError as e:
            raise e.wrap(f'failed to delete cluster "{name}"') from e
        return
    names = list(pos)
    if vals["all"]:
        names = prov.list_clusters()
    elif not names:
        names = [name]
    if len(names) == 1:
        log.info(f'Deleting cluster "{names[0]}" ...')
        try:
            delete_cluster(prov, log, names[0], kc)
        except KindError as e:
            raise e.wrap(f'failed to delete cluster "{names[0]}"') from e
        return
    ok = []
    for n in names:
        try:
            delete_cluster(prov, log, n, kc)
            ok.append(n)
        except KindError as e:
            log.info(f'failed to delete cluster "{n}": {e.msg}\n')
    log.info("Deleted clusters: [{}]".format(" ".join(go_quote(n) for n in ok)))


def cmd_get(argv: List[str], log: Logger) -> None:
    if not argv:
        raise KindError('unknown command "" for "kind get"')
    what, rest = argv[0], argv[1:]
    s = cli.Spec()
    s.add("name", "-n", "--name")
    s.add("internal", "--internal", kind="bool")
    s.add("all", "-A", "--all-clusters", kind="bool")
    _globals(s)
    vals, pos = _parse(rest, s)
    name = cli.get_str(vals, "name") or os.environ.get("KIND_CLUSTER_NAME", "") or "kind"
    prov = select_provider(log)
    if what == "clusters":
        cl = prov.list_clusters()
        if not cl:
            log.info("No kind clusters found.")
        for n in cl:
            state.out(n)
        return
    if what == "nodes":
        targets = prov.list_clusters() if vals["all"] else [name]
        found = []
        for t in targets:
            found += prov.list_nodes(t)
        if not found:
            log.info(f'No kind nodes found for cluster "{name}".')
        for n in found:
            state.out(n)
        return
    if what == "kubeconfig":
        nodes = prov.list_nodes(name)
        cps = [n for n in nodes if n.endswith("-control-plane") or "-control-plane" in n]
        rec = _record(name, prov)
        if not cps or rec is None:
            raise KindError(
                f"could not locate any control plane nodes for cluster named '{name}'. Use the "
                f"--name "
                "option to select a different cluster"
            )
        server = (
            (f"https://{name}-control-plane:6443") if vals["internal"] else endpoint(prov, cps[0])
        )
        import yaml

        kc = kubeconfig.kind_config(name, server, rec["ca_serial"], rec["client_serial"])
        sys.stdout.write(yaml.safe_dump(kc, default_flow_style=False, sort_keys=True))
        return
    raise KindError(f'unknown command "{what}" for "kind get"')


def _record(name: str, prov: Provider) -> Optional[Dict[str, Any]]:
    return clusters.load(clusters.cluster_id(state.hostname(), prov.name, state.uid(), name))


def cmd_export(argv: List[str], log: Logger) -> None:
    if not argv or argv[0] != "logs":
        raise KindError('unknown command "{}" for "kind export"'.format(argv[0] if argv else ""))
    s = cli.Spec()
    s.add("name", "-n", "--name")
    _globals(s)
    vals, pos = _parse(argv[1:], s)
    name = cli.get_str(vals, "name") or os.environ.get("KIND_CLUSTER_NAME", "") or "kind"
    prov = select_provider(log)
    nodes = prov.list_nodes(name)
    if not nodes:
        raise KindError(f'unknown cluster "{name}"')
    d = pos[0] if pos else tempfile.mkdtemp()
    # the directory is printed BEFORE the logs are collected (kind v0.33.0
    # pkg/cmd/kind/export/logs/logs.go runE: Infof + Fprintln, then CollectLogs), so it is
    # there even when collecting fails
    log.info(f'Exporting logs for cluster "{name}" to:')
    state.out(d)
    sys.stdout.flush()
    os.makedirs(d, exist_ok=True)
    faults.delay("kind", "export-logs")
    if faults.should_fail("kind", "export-logs"):
        raise KindError(
            f"[command \"{prov.binary} exec --privileged {nodes[0]} sh -c 'tar --hard-dereference "
            f"-C /var/log/ -chf - . "
            "|| (r=$?; [ $r -eq 1 ] || exit $r)'\" failed with error: exit status 1]"
        )
    with open(os.path.join(d, "kind-version.txt"), "w") as f:
        f.write("kind v{} go1.24.6 linux/amd64\n".format(faults.version("kind", KIND_DEFAULT)))
    try:
        _, out, _ = prov.run(["info"])
    except KindError as e:
        out = e.output or ""
    with open(
        os.path.join(d, "{}-info.txt".format("podman" if prov.name == "podman" else "docker")), "w"
    ) as f:
        f.write(out)
    for n in nodes:
        nd = os.path.join(d, n)
        os.makedirs(nd, exist_ok=True)
        for fn, text in (
            ("journal.log", f"-- emulated journal of {n} --\nReached target Multi-User System.\n"),
            ("kubelet.log", f"-- emulated kubelet log of {n} --\n"),
            ("containerd.log", f"-- emulated containerd log of {n} --\n"),
            ("serial.log", ""),
            ("kubernetes-version.txt", "v1.34.0\n"),
        ):
            with open(os.path.join(nd, fn), "w") as f:
                f.write(text)
        try:
            _, out, _ = prov.run(["inspect", n])
        except KindError as e:
            out = e.output or ""
        with open(os.path.join(nd, "inspect.json"), "w") as f:
            f.write(out)


def cmd_load(argv: List[str], log: Logger) -> None:
    if not argv or argv[0] not in ("image-archive", "docker-image"):
        raise KindError('unknown command "{}" for "kind load"'.format(argv[0] if argv else ""))
    s = cli.Spec()
    s.add("name", "-n", "--name")
    s.add("nodes", "--nodes")
    _globals(s)
    vals, pos = _parse(argv[1:], s)
    name = cli.get_str(vals, "name") or os.environ.get("KIND_CLUSTER_NAME", "") or "kind"
    if not pos:
        raise KindError(
            "name of image archive is required"
            if argv[0] == "image-archive"
            else "a list of image names is required"
        )
    prov = select_provider(log)
    archives: List[bytes] = []
    if argv[0] == "docker-image":
        # kind pkg/cmd/kind/load/docker-image: always `docker image inspect` / `docker save`
        for img in pos:
            try:
                subprocess.run(
                    ["docker", "image", "inspect", "-f", "{{ .Id }}", img],
                    check=True,
                    capture_output=True,
                )
            except (OSError, subprocess.CalledProcessError):
                raise KindError(f'image: "{img}" not present locally') from None
        fd, tmp = tempfile.mkstemp(suffix=".tar")
        os.close(fd)
        try:
            subprocess.run(["docker", "save", "-o", tmp] + pos, check=True, capture_output=True)
            archives.append(_read(tmp))
        except (OSError, subprocess.CalledProcessError) as e:
            raise KindError(
                'failed to save image: command "docker save -o {} {}" failed with error: {}'.format(
                    tmp, " ".join(pos), e
                )
            ) from e
        finally:
            state.remove(tmp)
    else:
        for p in pos:
            try:
                archives.append(_read(p))
            except OSError as e:
                raise KindError(kubeconfig.go_path_error("open", p, e)) from e
    nodes = prov.list_nodes(name)
    if not nodes:
        raise KindError(f'no nodes found for cluster "{name}"')
    selected = nodes
    if cli.get_str(vals, "nodes"):
        selected = []
        for n in cli.get_str(vals, "nodes").split(","):
            if n not in nodes:
                raise KindError(f"unknown node: {n}")
            selected.append(n)
    from .runtime import archive_tags

    loaded: List[str] = []
    for data in archives:
        for n in selected:
            try:
                prov.run(
                    [
                        "exec",
                        "--privileged",
                        "-i",
                        n,
                        "ctr",
                        "--namespace=k8s.io",
                        "images",
                        "import",
                        "--all-platforms",
                        "--digests",
                        "--snapshotter=overlayfs",
                        "-",
                    ],
                    stdin=data,
                )
            except KindError as e:
                raise e.wrap("failed to load image") from e
        loaded += archive_tags(data)
    rec = _record(name, prov)
    if rec:

        def upd(r: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
            if not r:
                return None
            for t in loaded:
                if t not in r["images_loaded"]:
                    r["images_loaded"].append(t)
            return r

        state.update_json(os.path.join(clusters.cdir(rec["id"]), "cluster.json"), upd)


# --------------------------------------------------------------------- entry


def _globals(s: cli.Spec) -> None:
    s.add("verbosity", "-v", "--verbosity")
    s.add("quiet", "-q", "--quiet", kind="bool")
    s.add("loglevel", "--loglevel")


def _parse(argv: List[str], s: cli.Spec) -> Tuple[Dict[str, Any], List[str]]:
    try:
        return cli.parse(argv, s)
    except cli.FlagError as e:
        raise KindError(str(e)) from e


def run(argv: List[str]) -> int:
    quiet = "-q" in argv or "--quiet" in argv
    log = Logger(quiet)
    args = [a for a in argv]
    # strip leading global flags
    while args and args[0] in ("-q", "--quiet", "-v", "--verbosity"):
        a = args.pop(0)
        if a in ("-v", "--verbosity") and args:
            args.pop(0)
    try:
        if not args or args[0] in ("-h", "--help", "help"):
            state.out(
                "kind creates and manages local Kubernetes clusters using Docker container 'nodes'"
            )
            return 0
        cmd, rest = args[0], args[1:]
        if cmd in {"version", "--version"}:
            # kind pkg/cmd/kind/version/version.go: "kind v0.30.0 go1.24.6 linux/amd64"
            state.out("kind v{} go1.24.6 linux/amd64".format(faults.version("kind", KIND_DEFAULT)))
            return 0
        if cmd == "create":
            if not rest or rest[0] != "cluster":
                raise KindError(
                    'unknown command "{}" for "kind create"'.format(rest[0] if rest else "")
                )
            cmd_create_cluster(rest[1:], log)
        elif cmd == "delete":
            cmd_delete(rest, log)
        elif cmd == "get":
            cmd_get(rest, log)
        elif cmd == "export":
            cmd_export(rest, log)
        elif cmd == "load":
            cmd_load(rest, log)
        else:
            raise KindError(f'unknown command "{cmd}" for "kind"')
    except KindError as e:
        # kind cmd/kind/app/main.go logError
        if not quiet:
            state.err(f"ERROR: {e.msg}")
            if e.output is not None:
                state.err(f"\nCommand Output: {e.output}")
        return 1
    return 0


def main(argv: List[str]) -> None:
    state.run_tool("kind", argv, run)
