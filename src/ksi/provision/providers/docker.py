"""docker (rootless dockerd); kind's default provider."""

from __future__ import annotations

from ksi.provision.providers.base import Provider


class DockerProvider(Provider):
    name = "docker"
    binary = "docker"
    daemon_fix = "start the rootless docker daemon ('dockerd-rootless-setuptool.sh install')"
