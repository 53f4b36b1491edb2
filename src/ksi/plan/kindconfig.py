"""The kind cluster config, built as data (v1alpha4) and dumped with PyYAML; never templated."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from ksi.errors import Exit, KsiError

API_VERSION = "kind.x-k8s.io/v1alpha4"


def build(*, workdir: str, k8s_port: int | None, api_address: str, api_port: int,
          pod_subnet: str = "", service_subnet: str = "",
          udp_ports: tuple[tuple[int, int], ...] = (),
          mirrors: dict[str, str] | None = None) -> dict[str, Any]:
    """The config for one single-node cluster.

    workdir is mounted at /app; k8s_port maps host:k8s_port -> node:k8s_port (TCP);
    udp_ports are (containerPort, hostPort) pairs (Liqo's gateway NodePort).
    """
    node: dict[str, Any] = {
        "role": "control-plane",
        "extraMounts": [{"hostPath": str(workdir), "containerPath": "/app"}],
    }
    mappings = []
    if k8s_port:
        mappings.append({"containerPort": k8s_port, "hostPort": k8s_port,
                         "listenAddress": "0.0.0.0", "protocol": "TCP"})
    for container_port, host_port in udp_ports:
        mappings.append({"containerPort": container_port, "hostPort": host_port,
                         "listenAddress": "0.0.0.0", "protocol": "UDP"})
    if mappings:
        node["extraPortMappings"] = mappings
    networking: dict[str, Any] = {"apiServerAddress": api_address, "apiServerPort": api_port}
    if pod_subnet:
        networking["podSubnet"] = pod_subnet
    if service_subnet:
        networking["serviceSubnet"] = service_subnet
    config: dict[str, Any] = {"kind": "Cluster", "apiVersion": API_VERSION,
                              "networking": networking, "nodes": [node]}
    if mirrors:
        config["containerdConfigPatches"] = [mirror_patch(mirrors)]
    return config


def mirror_patch(mirrors: dict[str, str]) -> str:
    """containerd (CRI v1) TOML registering a mirror endpoint per registry."""
    lines = []
    for registry, url in sorted(mirrors.items()):
        lines.append(f'[plugins."io.containerd.grpc.v1.cri".registry.mirrors."{registry}"]')
        lines.append(f'  endpoint = ["{url}"]')
    return "\n".join(lines) + "\n"


def merge(base: dict[str, Any], fragment: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge a site/user fragment: mappings recursively, `nodes` element by element,
    other lists appended."""
    out = copy.deepcopy(base)
    for key, value in fragment.items():
        if key == "nodes" and isinstance(value, list) and isinstance(out.get("nodes"), list):
            for i, node in enumerate(value):
                if i < len(out["nodes"]):
                    out["nodes"][i] = merge(out["nodes"][i], node)
                else:
                    out["nodes"].append(copy.deepcopy(node))
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        elif isinstance(value, list) and isinstance(out.get(key), list):
            out[key] = out[key] + copy.deepcopy(value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_fragment(path: str) -> dict[str, Any]:
    """Read a YAML fragment to merge; it must be a mapping."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise KsiError(f"cannot read kind config fragment {path}: {exc.strerror}",
                       "fix the kind_config setting", code=Exit.CONFIG_INVALID) from exc
    except yaml.YAMLError as exc:
        raise KsiError(f"kind config fragment {path} is not valid YAML: {exc}".splitlines()[0],
                       f"correct {path}", code=Exit.CONFIG_INVALID) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise KsiError(f"kind config fragment {path} must be a YAML mapping",
                       f"correct {path}", code=Exit.CONFIG_INVALID)
    for key in ("kind", "apiVersion"):
        data.pop(key, None)
    return data


def dump(config: dict[str, Any]) -> str:
    import yaml

    class _Dumper(yaml.SafeDumper):
        pass

    def _str(dumper: yaml.SafeDumper, data: str) -> Any:
        # multi-line strings (containerdConfigPatches TOML) as literal blocks: readable
        style = "|" if "\n" in data else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    _Dumper.add_representer(str, _str)
    return yaml.dump(config, Dumper=_Dumper, sort_keys=False, default_flow_style=False)
