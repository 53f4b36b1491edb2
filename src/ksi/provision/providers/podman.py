"""podman (rootless or root); kind calls it 'experimental'."""

from __future__ import annotations

from typing import Any, Mapping

from ksi.errors import Exit
from ksi.provision.providers.base import Provider, RuntimeInfo, cgroup_number, json_object


class PodmanProvider(Provider):
    name = "podman"
    binary = "podman"
    info_format = "json"    # kind's providers/podman/provider.go podmanInfo
    daemon_fix = "check 'podman info' works for your user (subuid/subgid, XDG_RUNTIME_DIR)"

    @classmethod
    def parse_info(cls, text: str) -> RuntimeInfo:
        """podman's info JSON (libpod define.Info: host, store, version)."""
        data = json_object(text)
        host = data.get("host") or {}
        return RuntimeInfo(
            rootless=bool((host.get("security") or {}).get("rootless")),
            cgroup_version=cgroup_number(host.get("cgroupVersion")),
            cgroup_manager=str(host.get("cgroupManager") or ""),
            version=str((data.get("version") or {}).get("Version") or ""),
            devmapper=devmapper(data))

    def node_volumes(self, nodes: list[str]) -> list[str]:
        """kind's podman provider gives each node an anonymous /var volume labelled
        '<node>=true' (providers/podman/provision.go createAnonymousVolume); kind deletes them
        only together with their node, so a node removed by other means leaves it behind."""
        out: list[str] = []
        for node in nodes:
            res = self.runner.run([self.binary, "volume", "ls", "--filter", f"label={node}",
                                   "--quiet"], env=self.env, timeout=60,
                                  what="podman volume ls", code=Exit.TEARDOWN_INCOMPLETE)
            out += res.stdout.split()
        return out


def devmapper(info_raw: Mapping[str, Any]) -> bool:
    """kind's mountDevMapper: btrfs, zfs or devicemapper storage (or such a backing fs)."""
    store = info_raw.get("store") or {}
    status = store.get("graphStatus") or {}
    return store.get("graphDriverName") in ("btrfs", "zfs", "devicemapper") or \
        status.get("Backing Filesystem") in ("btrfs", "xfs", "zfs")
