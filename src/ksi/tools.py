"""The versions of the programs KSI drives, as found on PATH (`ksi --version`).

Each is asked through the runner with a short timeout, in its structured form where it has
one (kubectl -o json, the runtimes' --format json)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from ksi.errors import KsiError

if TYPE_CHECKING:
    from ksi.runner import Runner

TIMEOUT = 5.0
RUNTIMES = ("nerdctl", "podman", "docker")
_VERSION = re.compile(r"\bv?(\d+\.\d+(?:\.\d+)?[\w.+-]*)")


@dataclass(frozen=True)
class ToolVersion:
    name: str
    path: Optional[str]     # None: not on PATH
    version: str = ""       # "" when it did not say
    detail: str = ""        # e.g. "containerd v2.1.4"

    def line(self, width: int = 8) -> str:
        if self.path is None:
            return f"{self.name:<{width}}  not found on PATH"
        what = self.version or "version unknown"
        return f"{self.name:<{width}}  {what}{f' ({self.detail})' if self.detail else ''}" \
               f"  {self.path}"


def _first_version(text: str) -> str:
    m = _VERSION.search(text)
    return f"v{m.group(1)}" if m else ""


def _output(runner: Runner, argv: list[str]) -> str:
    try:
        res = runner.run(argv, timeout=TIMEOUT, check=False)
    except KsiError:   # timed out, vanished
        return ""
    return res.stdout if res.returncode == 0 else ""


def _kubectl(runner: Runner) -> tuple[str, str]:
    try:
        data = json.loads(_output(runner, ["kubectl", "version", "--client", "-o", "json"]))
    except ValueError:
        return "", ""
    return str((data.get("clientVersion") or {}).get("gitVersion") or ""), ""


def _runtime(runner: Runner, name: str) -> tuple[str, str]:
    from ksi.provision import providers

    v = providers.get(name, runner).versions(timeout=TIMEOUT)
    if v is None:
        return "", ""
    client = v.client if v.client.startswith("v") or not v.client else f"v{v.client}"
    server = ", ".join(f"{k} {s if s.startswith('v') else 'v' + s}"
                       for k, s in v.server.items() if k not in ("runc", name))
    return client, server


def tool_versions(runner: Runner) -> list[ToolVersion]:
    """kind, kubectl, each runtime and liqoctl: where each is and its version."""
    out = []
    for name in ("kind", "kubectl", *RUNTIMES, "liqoctl"):
        path = runner.which(name)
        if path is None:
            out.append(ToolVersion(name, None))
            continue
        if name == "kind":
            version, detail = _first_version(_output(runner, ["kind", "version"])), ""
        elif name == "kubectl":
            version, detail = _kubectl(runner)
        elif name == "liqoctl":
            version = _first_version(_output(runner, ["liqoctl", "version", "--client"]))
            detail = ""
        else:
            version, detail = _runtime(runner, name)
        out.append(ToolVersion(name, path, version, detail))
    return out
