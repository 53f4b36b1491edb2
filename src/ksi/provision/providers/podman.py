"""podman (rootless or root); kind calls it 'experimental'."""

from __future__ import annotations

from ksi.errors import Exit
from ksi.provision.providers.base import Provider


class PodmanProvider(Provider):
    name = "podman"
    binary = "podman"
    # podman < 5 has no {{.Label}}; index works on every version
    label_format = '{{.Names}}\t{{index .Labels "%s"}}'
    daemon_fix = "check 'podman info' works for your user (subuid/subgid, XDG_RUNTIME_DIR)"

    def node_volumes(self, nodes: list[str]) -> list[str]:
        """kind's podman provider gives each node an anonymous /var volume labelled
        '<node>=true' (providers/podman/provision.go createAnonymousVolume); kind deletes them
        only together with their node, so a node removed by other means leaves it behind."""
        out: list[str] = []
        for node in nodes:
            res = self.runner.run([self.binary, "volume", "ls", "--filter", f"label={node}",
                                   "--quiet"], timeout=60, what="podman volume ls",
                                  code=Exit.TEARDOWN_INCOMPLETE)
            out += res.stdout.split()
        return out

    def check_daemon(self) -> None:
        from ksi.errors import CommandFailed, Exit

        try:
            self.runner.run([self.binary, "info", "--format", "json"], timeout=60,
                            what="podman info", code=Exit.RUNTIME_UNAVAILABLE,
                            fix=self.daemon_fix)
        except CommandFailed as exc:
            exc.code = Exit.RUNTIME_UNAVAILABLE
            raise
