"""Runtime providers for kind (modelled on kind's pkg/cluster/internal/providers: one small
class per runtime behind a common interface)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Mapping, Optional

from ksi.errors import Exit, KsiError
from ksi.provision.providers.base import Container, Provider, RuntimeInfo, RuntimeVersion
from ksi.provision.providers.docker import DockerProvider
from ksi.provision.providers.nerdctl import NerdctlProvider
from ksi.provision.providers.podman import PodmanProvider

if TYPE_CHECKING:
    from ksi.runner import Runner

PROVIDERS: dict[str, type[Provider]] = {
    "nerdctl": NerdctlProvider, "podman": PodmanProvider, "docker": DockerProvider,
}
AUTO_ORDER = ("nerdctl", "podman", "docker")
CHOICES = (*AUTO_ORDER, "auto")

__all__ = ["CHOICES", "PROVIDERS", "Container", "Provider", "RuntimeInfo", "RuntimeVersion",
           "get", "resolve"]


def resolve(name: str, which: Callable[[str], Optional[str]]) -> str:
    """The runtime `name` means: itself, or for 'auto' the first of AUTO_ORDER on PATH
    (which(binary) -> path or None). Raises PROVIDER_MISSING / PROVIDER_UNKNOWN."""
    if name == "auto":
        for candidate in AUTO_ORDER:
            if which(PROVIDERS[candidate].binary):
                return candidate
        raise KsiError("no container runtime found (looked for nerdctl, podman, docker)",
                       "install rootless nerdctl or podman, or load its module (see 'ksi doctor')",
                       code=Exit.PROVIDER_MISSING)
    if name not in PROVIDERS:
        raise KsiError(f"unknown provider {name!r}",
                       "use --provider nerdctl, podman, docker or auto",
                       code=Exit.PROVIDER_UNKNOWN)
    return name


def get(name: str, runner: Runner, env: Optional[Mapping[str, str]] = None) -> Provider:
    """The provider called name ('auto': the first runtime found on PATH); env is added to
    the environment of its commands (a job-scoped runtime's)."""
    return PROVIDERS[resolve(name, runner.which)](runner, env)
