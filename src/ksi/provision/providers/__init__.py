"""Runtime providers for kind (modelled on kind's pkg/cluster/internal/providers: one small
class per runtime behind a common interface)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ksi.errors import Exit, KsiError
from ksi.provision.providers.base import Provider
from ksi.provision.providers.docker import DockerProvider
from ksi.provision.providers.nerdctl import NerdctlProvider
from ksi.provision.providers.podman import PodmanProvider

if TYPE_CHECKING:
    from ksi.runner import Runner

PROVIDERS: dict[str, type[Provider]] = {
    "nerdctl": NerdctlProvider, "podman": PodmanProvider, "docker": DockerProvider,
}
AUTO_ORDER = ("nerdctl", "podman", "docker")

__all__ = ["PROVIDERS", "Provider", "get"]


def get(name: str, runner: Runner) -> Provider:
    """The provider called name ('auto': the first runtime found on PATH)."""
    if name == "auto":
        for candidate in AUTO_ORDER:
            if runner.which(PROVIDERS[candidate].binary):
                return PROVIDERS[candidate](runner)
        raise KsiError("no container runtime found (looked for nerdctl, podman, docker)",
                       "install rootless nerdctl or podman, or load its module (see 'ksi doctor')",
                       code=Exit.PROVIDER_MISSING)
    cls = PROVIDERS.get(name)
    if cls is None:
        raise KsiError(f"unknown provider {name!r}",
                       "use --provider nerdctl, podman, docker or auto",
                       code=Exit.PROVIDER_UNKNOWN)
    return cls(runner)
