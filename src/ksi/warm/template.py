"""A template's key (from its inputs), its record (with a checksum) and one user's store of
records (a private directory: 0700, files 0600).

The key covers what goes into the node: the node image's id, KSI's version, the provider,
the kind config without what each run sets itself (the API server's host port, the port
mappings, the /app host path) and the Liqo version and values (multi-node). A record whose
key, checksum, owner, image or /var digest does not match is never used."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

FORMAT = 1
LABEL = "io.ksi.warm"          # on the template's image build cluster, image and volume
APP = "/app"


class TemplateProblem(Exception):
    """Why a template cannot be used (one line: missing, stale, corrupt, slow…)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def default_warm_dir(environ: Mapping[str, str]) -> Path:
    """$XDG_STATE_HOME/ksi/warm, else ~/.local/state/ksi/warm (persistent, unlike the
    runtime directory: the template lives as long as the runtime's storage)."""
    state = environ.get("XDG_STATE_HOME", "")
    base = Path(state) if state else Path(environ.get("HOME") or os.path.expanduser("~")) \
        / ".local" / "state"
    return base / "ksi" / "warm"


def node_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The kind config as far as it goes into the node: per-run parts blanked (API server
    host port, port mappings, the /app host path)."""
    out = copy.deepcopy(dict(config))
    networking = out.setdefault("networking", {})
    networking["apiServerPort"] = 0
    for node in out.get("nodes") or []:
        node.pop("extraPortMappings", None)
        for mount in node.get("extraMounts") or []:
            if mount.get("containerPath") == APP:
                mount["hostPath"] = ""
    return out


def unsupported(config: Mapping[str, Any], provider: str, mode: str) -> Optional[str]:
    """Why this run cannot start warm (None: it can)."""
    if mode == "federated":
        return "warm start is single-node only so far (multi-node needs Liqo in the template)"
    if provider != "podman":
        return f"warm start supports podman only so far (provider {provider})"
    nodes = config.get("nodes") or [{}]
    if len(nodes) != 1:
        return f"warm start needs a single-node kind config ({len(nodes)} nodes)"
    other = [m.get("containerPath") for m in nodes[0].get("extraMounts") or []
             if m.get("containerPath") != APP]
    if other:
        return f"warm start mounts only /app (the kind config also mounts {', '.join(other)})"
    return None


def digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class Inputs:
    """What a template is made of; its key names it."""

    image: str
    image_id: str
    provider: str
    ksi_version: str
    node_config: Mapping[str, Any]
    liqo: str = ""            # Liqo version and values (multi-node; '' on one node)
    store: str = ""           # the record directory: its runtime objects are its own

    @property
    def key(self) -> str:
        return digest({"image_id": self.image_id, "provider": self.provider,
                       "ksi_version": self.ksi_version, "node_config": self.node_config,
                       "liqo": self.liqo, "store": self.store, "format": FORMAT})

    def names(self) -> Names:
        return Names(self.key)


@dataclass(frozen=True)
class Names:
    """The runtime objects of one template."""

    key: str

    @property
    def cluster(self) -> str:          # the build cluster (not a KSI job's: gc leaves it)
        return f"ksiwarm-{self.key[:10]}"

    @property
    def node(self) -> str:             # also every clone's hostname (the Node's name)
        return f"{self.cluster}-control-plane"

    @property
    def image(self) -> str:
        return f"localhost/ksi-warm:{self.key[:12]}"

    @property
    def volume(self) -> str:
        return f"ksiwarm-{self.key[:12]}-var"


@dataclass
class Record:
    """A template that was made completely (written last, so a half build has none)."""

    key: str
    uid: int
    inputs: dict[str, Any]
    template_image_id: str
    volume: str
    var_digest: str
    entrypoint: list[str]
    cmd: list[str]
    build_seconds: float = 0.0
    created: float = field(default_factory=time.time)
    format: int = FORMAT
    checksum: str = ""

    @property
    def names(self) -> Names:
        return Names(self.key)

    def body(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("checksum")
        return data

    def sealed(self) -> Record:
        self.checksum = digest(self.body())
        return self

    @classmethod
    def parse(cls, text: str) -> Record:
        """The record in text; TemplateProblem when it is not one or its checksum fails."""
        try:
            data = json.loads(text)
            rec = cls(**data)
        except (ValueError, TypeError) as exc:
            raise TemplateProblem(f"template record unreadable ({exc})") from exc
        if rec.format != FORMAT:
            raise TemplateProblem(f"template record format {rec.format}, this KSI writes "
                                  f"{FORMAT}")
        if rec.checksum != digest(rec.body()):
            raise TemplateProblem("template record changed since it was written (checksum)")
        return rec


class Store:
    """One user's template records: <dir>/<key>.json."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.json"

    def lock_path(self, key: str) -> Path:
        return self.dir / f"{key}.lock"

    def ensure(self) -> Path:
        from ksi.plan.paths import ensure_private_dir

        return ensure_private_dir(self.dir, fix="set warm_dir to a directory of your own")

    def read(self, inputs: Inputs) -> Record:
        """The record for these inputs, checked (checksum, owner, key); TemplateProblem
        else."""
        key = inputs.key
        path = self.path(key)
        try:
            st = os.lstat(path)
            text = path.read_text()
        except FileNotFoundError as exc:
            raise TemplateProblem(self.why_missing(inputs)) from exc
        except OSError as exc:
            raise TemplateProblem(f"template record {path}: {exc.strerror}") from exc
        if st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise TemplateProblem(f"template record {path} is not private to you")
        rec = Record.parse(text)
        if rec.key != key or rec.uid != os.getuid():
            raise TemplateProblem("template record belongs to other inputs or another user")
        return rec

    def why_missing(self, inputs: Inputs) -> str:
        """'no template' or, when one exists for other inputs, which inputs differ."""
        others = [r for r in self.records() if isinstance(r, Record)]
        if not others:
            return "no warm template yet (make one with 'ksi warm')"
        newest = max(others, key=lambda r: r.created)
        changed = differs(newest.inputs, asdict(inputs))
        return f"warm template stale: {changed} changed (run 'ksi warm')"

    def write(self, rec: Record) -> None:
        from ksi.plan.paths import write_private

        self.ensure()
        write_private(self.path(rec.key), json.dumps(asdict(rec.sealed()), indent=2,
                                                     sort_keys=True) + "\n")

    def remove(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)
        self.lock_path(key).unlink(missing_ok=True)

    def records(self) -> list[Record | tuple[str, str]]:
        """Every record; (key, problem) for one that cannot be read."""
        out: list[Record | tuple[str, str]] = []
        if not self.dir.is_dir():
            return out
        for path in sorted(self.dir.glob("*.json")):
            try:
                out.append(Record.parse(path.read_text()))
            except (TemplateProblem, OSError) as exc:
                out.append((path.stem, str(exc)))
        return out


def differs(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """The names of the inputs that differ."""
    names = [k for k in ("image", "image_id", "ksi_version", "provider", "node_config", "liqo",
                         "store")
             if old.get(k) != new.get(k)]
    return ", ".join(names) or "the inputs"


def var_digest(root: Path) -> str:
    """A digest of a /var tree's metadata: every path, type, mode, size and mtime (reading
    1.3 GB of content per run would cost seconds; a changed or truncated file changes its
    size or mtime)."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames) + dirnames:
            p = os.path.join(dirpath, name)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            h.update(f"{os.path.relpath(p, root)}\0{st.st_mode}\0{st.st_size}\0"
                     f"{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


if __name__ == "__main__":  # `podman unshare python3 -m ksi.warm.template DIR` (rootless)
    import sys

    print(var_digest(Path(sys.argv[1])))
