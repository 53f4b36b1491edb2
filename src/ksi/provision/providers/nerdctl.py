"""nerdctl (rootless containerd): the original KSI's runtime; kind >= 0.23."""

from __future__ import annotations

from ksi.provision.providers.base import Provider


class NerdctlProvider(Provider):
    name = "nerdctl"
    binary = "nerdctl"
    daemon_fix = ("start rootless containerd: 'containerd-rootless-setuptool.sh install' and "
                  "make sure XDG_RUNTIME_DIR=/run/user/$UID is set")
