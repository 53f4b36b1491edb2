"""`ksi warm` (make this user's template for the current settings, or remove them), the
templates `ksi ls` shows and the stale ones `ksi gc` removes."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ksi import __version__
from ksi.errors import KsiError
from ksi.warm.template import LABEL, Names, Record, Store, TemplateProblem, default_warm_dir

if TYPE_CHECKING:
    from ksi.provision.kind import Kind
    from ksi.provision.providers import Provider
    from ksi.runner import Runner
    from ksi.settings import Settings


@dataclass
class Template:
    """One template as `ksi ls` shows it."""

    key: str
    image: str
    status: str          # valid | stale: <why> | corrupt: <why>
    age_seconds: Optional[float]
    build_seconds: Optional[float]

    def as_dict(self) -> dict:
        return {"key": self.key, "image": self.image, "status": self.status,
                "age_seconds": self.age_seconds, "build_seconds": self.build_seconds}


def tools(settings: Settings, runner: Runner) -> tuple[Provider, Kind, Store]:
    from ksi.provision import providers
    from ksi.provision.kind import Kind

    provider = providers.get(settings.provider, runner)
    kind = Kind(runner, provider, systemd_scope=settings.systemd_scope)
    store = Store(Path(settings.warm_dir) if settings.warm_dir
                  else default_warm_dir(os.environ))
    return provider, kind, store


def usable(provider: Provider, store: Store) -> bool:
    """Whether this user can have templates here (podman on PATH, or records exist)."""
    return (provider.name == "podman" and bool(provider.runner.which(provider.binary))) \
        or bool(store.records())


def make(settings: Settings, runner: Runner, *, force: bool = False) -> tuple[Record, bool]:
    """The valid template for these settings: the existing one, or one made now (True)."""
    from ksi.warm import clone
    from ksi.warm.build import build, config_for, inputs_for
    from ksi.warm.template import unsupported

    provider, kind, store = tools(settings, runner)
    config = config_for(settings)
    why = unsupported(config, provider.name, "single")
    if why:
        from ksi.errors import Exit

        raise KsiError(why, "use --provider podman and a single-node kind_config",
                       code=Exit.WARM_FAILED)
    provider.check_daemon()
    inputs = inputs_for(provider, settings.image, config, store)
    if not force:
        try:
            return clone.check(provider, store, inputs), False
        except TemplateProblem:
            pass
    return build(provider, kind, store, inputs, config, timeout=settings.create_timeout), True


def status(provider: Provider, store: Store, rec: Record) -> str:
    """valid, stale (its image or KSI changed) or corrupt (a part changed or is missing)."""
    from ksi.provision.providers import noderun
    from ksi.warm import clone
    from ksi.warm.template import Inputs

    inputs = Inputs(**rec.inputs)
    if rec.inputs.get("ksi_version") != __version__:
        return f"stale: made by KSI {rec.inputs.get('ksi_version')}"
    if noderun.image_id(provider, inputs.image) != inputs.image_id:
        return f"stale: node image {inputs.image} changed or is gone"
    try:
        clone.check(provider, store, inputs)
    except TemplateProblem as exc:
        return f"corrupt: {exc.reason}"
    return "valid"


def templates(settings: Settings, runner: Runner) -> list[Template]:
    """This user's templates with their status."""
    provider, _kind, store = tools(settings, runner)
    out: list[Template] = []
    if not usable(provider, store):
        return out
    now = time.time()
    for rec in store.records():
        if isinstance(rec, tuple):
            out.append(Template(rec[0], "", f"corrupt: {rec[1]}", None, None))
            continue
        try:
            st = status(provider, store, rec)
        except KsiError as exc:
            st = f"unknown: {exc.cause}"
        out.append(Template(rec.key, str(rec.inputs.get("image", "")), st,
                            now - rec.created, rec.build_seconds))
    return out


def _building(store: Store, key: str) -> bool:
    """Whether a build of key (or of a key starting so) holds its lock now."""
    import fcntl

    for lock in store.dir.glob(f"{key}*.lock") if store.dir.is_dir() else []:
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
    return False


def remove(settings: Settings, runner: Runner, *, only_stale: bool = False,
           dry_run: bool = False) -> tuple[list[str], list[str]]:
    """Remove this store's templates (only_stale: those not valid) and the runtime objects of
    its half-made ones (a killed build: its lock file is here but no record; never one being
    made now). Another store's templates are never touched. (lines, problems)."""
    from ksi.warm.build import remove_objects

    provider, kind, store = tools(settings, runner)
    done: list[str] = []
    problems: list[str] = []
    if not usable(provider, store):
        return done, problems
    keys: dict[str, str] = {}
    for t in templates(settings, runner):
        if not only_stale or t.status != "valid":
            keys[t.key] = t.status
    from ksi.provision.providers import noderun

    started = {lock.stem for lock in store.dir.glob("*.lock")} if store.dir.is_dir() else set()
    for what in ("image", "volume"):   # a build of this store killed after kind create
        for _name, key in noderun.labelled(provider, what, LABEL):
            if key in started and key not in keys and not store.path(key).exists():
                keys[key] = "half made"
    for _node, cluster in provider.all_kind_containers():   # a build killed in kind create
        short = cluster.removeprefix("ksiwarm-")
        if cluster.startswith("ksiwarm-") and any(k.startswith(short) for k in started) \
                and not any(k.startswith(short) for k in keys) \
                and not any(store.path(k).exists() for k in started if k.startswith(short)):
            keys[short] = "half made"
    for key, why in sorted(keys.items()):
        if _building(store, key):
            continue
        line = f"template {key[:12]} ({why})"
        if dry_run:
            done.append(f"would remove {line}")
            continue
        left = remove_objects(provider, kind, Names(key))
        store.remove(key)
        problems += left
        done.append(f"removed {line}")
    return done, problems
