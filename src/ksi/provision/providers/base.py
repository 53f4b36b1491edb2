"""What KSI needs from a container runtime, beyond what kind does with it."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from ksi.errors import CommandFailed, Exit, KsiError

if TYPE_CHECKING:
    from ksi.runner import Runner

CLUSTER_LABEL = "io.x-k8s.kind.cluster"  # kind's node container label
ROLE_LABEL = "io.x-k8s.kind.role"


class Provider:
    """A runtime kind drives (KIND_EXPERIMENTAL_PROVIDER=<name>)."""

    name: ClassVar[str] = "abstract"
    binary: ClassVar[str] = ""
    label_format: ClassVar[str] = '{{.Names}}\t{{.Label "%s"}}'
    daemon_fix: ClassVar[str] = ""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def kind_env(self) -> dict[str, str]:
        return {"KIND_EXPERIMENTAL_PROVIDER": self.name}

    def check_installed(self) -> str:
        path = self.runner.which(self.binary)
        if not path:
            raise KsiError(f"provider {self.name}: '{self.binary}' is not on PATH",
                           f"install {self.binary} (or load its module), or pick another "
                           "--provider", code=Exit.PROVIDER_MISSING)
        return path

    def check_daemon(self) -> None:
        """Fail fast when the runtime cannot be reached (rootless daemon not running)."""
        try:
            self.runner.run([self.binary, "info", "--format", "{{json .}}"], timeout=60,
                            what=f"{self.binary} info", code=Exit.RUNTIME_UNAVAILABLE,
                            fix=self.daemon_fix)
        except CommandFailed as exc:
            exc.code = Exit.RUNTIME_UNAVAILABLE
            raise

    def version(self) -> str:
        res = self.runner.run([self.binary, "--version"], timeout=30, check=False)
        return (res.stdout or res.stderr).strip().splitlines()[0] if res.returncode == 0 else ""

    def _ps(self, label_filter: str) -> list[tuple[str, str]]:
        res = self.runner.run(
            [self.binary, "ps", "-a", "--filter", f"label={label_filter}",
             "--format", self.label_format % CLUSTER_LABEL],
            timeout=60, what=f"{self.binary} ps", code=Exit.RUNTIME_UNAVAILABLE,
            fix=self.daemon_fix)
        out = []
        for line in res.stdout.splitlines():
            if line.strip():
                name, _, cluster = line.partition("\t")
                out.append((name.strip(), cluster.strip()))
        return out

    def node_containers(self, cluster: str) -> list[str]:
        """Names of the node containers of one kind cluster."""
        return [n for n, _ in self._ps(f"{CLUSTER_LABEL}={cluster}")]

    def all_kind_containers(self) -> list[tuple[str, str]]:
        """(container, cluster) for every kind node container this runtime shows."""
        return self._ps(CLUSTER_LABEL)

    def kill(self, names: list[str]) -> None:
        """SIGKILL containers (a node whose cluster is discarded needs no graceful stop)."""
        if names:
            self.runner.run([self.binary, "kill", *names], timeout=60,
                            what=f"{self.binary} kill", code=Exit.TEARDOWN_INCOMPLETE)

    def node_volumes(self, nodes: list[str]) -> list[str]:
        """Volumes kind made for these nodes that outlive them (podman only)."""
        return []

    def remove_volumes(self, volumes: list[str]) -> None:
        if volumes:
            self.runner.run([self.binary, "volume", "rm", "--force", *volumes], timeout=120,
                            what=f"{self.binary} volume rm", code=Exit.TEARDOWN_INCOMPLETE)

    def remove(self, names: list[str]) -> None:
        if names:
            self.runner.run([self.binary, "rm", "-f", "-v", *names], timeout=120,
                            what=f"{self.binary} rm", code=Exit.TEARDOWN_INCOMPLETE)

    def network_exists(self, name: str) -> bool:
        res = self.runner.run([self.binary, "network", "inspect", name], timeout=60,
                              check=False)
        return res.returncode == 0

    def image_present(self, image: str) -> bool:
        res = self.runner.run([self.binary, "image", "inspect", image], timeout=60, check=False)
        return res.returncode == 0

    def load_archive(self, path: str) -> None:
        self.runner.run([self.binary, "load", "-i", path], timeout=900,
                        what=f"{self.binary} load -i {path}", code=Exit.IMAGE_FAILED,
                        fix="check the archive (e.g. re-create it with 'ksi images save')")
