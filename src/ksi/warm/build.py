"""Make a template: create a cluster from the run's node config, wait until it is Ready,
give it the clone entrypoint and the throwaway flags, stop it, commit the node and copy its
/var into the template's volume, delete the cluster, and write the record last. Any failure
removes what was made: no half template is left."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from ksi import __version__
from ksi.errors import Exit, KsiError
from ksi.provision.providers import noderun
from ksi.warm import identity
from ksi.warm.template import LABEL, Inputs, Names, Record, Store, node_config, var_digest

if TYPE_CHECKING:
    from ksi.provision.kind import Kind
    from ksi.provision.providers import Provider
    from ksi.settings import Settings

log = logging.getLogger("ksi.warm")


def config_for(settings: Settings) -> dict[str, Any]:
    """The node config of a single-node run with these settings (what the key covers)."""
    from ksi.plan import kindconfig
    from ksi.plan.plan import parse_mirrors

    config = kindconfig.build(workdir="", k8s_port=None,
                              api_address=settings.api_address or "127.0.0.1", api_port=0,
                              mirrors=parse_mirrors(settings.registry_mirrors))
    if settings.kind_config:
        config = kindconfig.merge(config, kindconfig.load_fragment(settings.kind_config))
    return node_config(config)


def inputs_for(provider: Provider, image: str, config: Mapping[str, Any],
               store: Store) -> Inputs:
    """The inputs of a template for this image (its id asked of the runtime), config and
    store."""
    if not image:
        raise KsiError("warm start needs a pinned node image (kind's default is not here)",
                       "set the image setting (KSI_IMAGE) to the node image", code=Exit.WARM_FAILED)
    got = noderun.image_id(provider, image)
    if not got:
        raise KsiError(f"the node image {image} is not in {provider.binary}'s storage",
                       "load it (image_archive, 'ksi images') or run once cold",
                       code=Exit.WARM_FAILED)
    return Inputs(image=image, image_id=got, provider=provider.name, ksi_version=__version__,
                  node_config=dict(config), store=str(store.dir))


@contextlib.contextmanager
def build_lock(store: Store, key: str) -> Iterator[None]:
    """One build per template at a time (another one: KsiError at once, never a wait)."""
    store.ensure()
    fd = os.open(store.lock_path(key), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise KsiError("another 'ksi warm' is making this template now",
                           "wait for it, then run again", code=Exit.WARM_FAILED) from exc
        yield
    finally:
        os.close(fd)


def remove_objects(provider: Provider, kind: Kind, names: Names) -> list[str]:
    """Remove a template's runtime objects (build cluster, image, volume); problems left."""
    from ksi.provision.delete import delete_cluster

    problems = delete_cluster(provider, kind, names.cluster, None, nodes=[names.node])
    noderun.remove_image(provider, names.image)
    try:
        provider.remove_volumes([names.volume] if noderun.volume_mountpoint(
            provider, names.volume) else [])
    except KsiError as exc:
        problems.append(exc.cause)
    if noderun.image_id(provider, names.image):
        problems.append(f"image {names.image} is still there")
    return problems


def build(provider: Provider, kind: Kind, store: Store, inputs: Inputs,
          config: Mapping[str, Any], *, timeout: float = 600) -> Record:
    """Make the template for inputs (config: the node config); its record."""
    names = inputs.names()
    started = time.monotonic()
    with build_lock(store, inputs.key):
        store.remove(inputs.key)          # a record of a template being remade is void
        remove_objects(provider, kind, names)   # leftovers of a killed build
        try:
            rec = _make(provider, kind, store, inputs, config, names, timeout)
        except BaseException as exc:
            problems = remove_objects(provider, kind, names)
            if problems:
                log.warning("the half-made template was not removed completely: %s",
                            "; ".join(problems))
            if isinstance(exc, KsiError):
                raise KsiError(f"the warm template could not be made: {exc.cause}",
                               "nothing of it was left; 'ksi warm -v' shows each command "
                               "(runs start cold meanwhile)", code=Exit.WARM_FAILED,
                               detail=exc.detail) from exc
            raise
        rec.build_seconds = round(time.monotonic() - started, 1)
        store.write(rec)
        return rec


def _make(provider: Provider, kind: Kind, store: Store, inputs: Inputs,
          config: Mapping[str, Any], names: Names, timeout: float) -> Record:
    from ksi.access.kubectl import Kubectl
    from ksi.plan import kindconfig
    from ksi.plan.paths import write_private
    from ksi.provision.delete import delete_cluster

    info = provider.info()
    with tempfile.TemporaryDirectory(prefix="ksi-warm-", dir=store.ensure()) as tmp:
        cfg = dict(config)
        cfg["nodes"] = [dict(n) for n in cfg.get("nodes") or [{}]]
        for n in cfg["nodes"]:   # the build's /app: an empty directory
            n["extraMounts"] = [dict(m, hostPath=tmp) if m.get("containerPath") == "/app"
                                else m for m in n.get("extraMounts") or []]
        cfg_path, kubeconfig = Path(tmp) / "kind.yaml", Path(tmp) / "kubeconfig"
        write_private(cfg_path, kindconfig.dump(cfg))
        kind.create(names.cluster, cfg_path, kubeconfig, image=inputs.image, timeout=timeout)
        k = Kubectl(provider.runner, kubeconfig, f"kind-{names.cluster}")
        k.wait_nodes_ready(timeout)
        k.wait_exists("serviceaccount", "default", "default", timeout)
        k.run("wait", "--for=condition=Ready", "pods", "--all", "-n", "kube-system",
              f"--timeout={int(timeout)}s", timeout=timeout + 30)
        _, entrypoint, cmd = noderun.image_config(provider, inputs.image)
        noderun.exec_in(provider, names.node, ["sh", "-c", identity.INSTALL],
                        "install the clone entrypoint", input=identity.CLONE_ENTRYPOINT)
        noderun.exec_in(provider, names.node, ["sh", "-c", identity.PATCH_MANIFESTS],
                        "patch the static pod manifests")
        noderun.exec_in(provider, names.node, ["sh", "-c", identity.ECDSA_CONFIG],
                        "write the clones' kubeadm config")
        noderun.exec_in(provider, names.node, ["rm", "-f", "/etc/kubernetes/admin.conf",
                                               "/etc/kubernetes/super-admin.conf"],
                        "remove the template's admin accounts")
        noderun.stop(provider, names.node)
        entry = [identity.ENTRYPOINT, *entrypoint]
        image_id = noderun.commit(provider, names.node, names.image, entry, cmd,
                                  {LABEL: inputs.key})
        var = noderun.volume_create(provider, names.volume, {LABEL: inputs.key})
        dst = noderun.volume_mountpoint(provider, var)
        src_vols = provider.node_volumes([names.node])
        src = noderun.volume_mountpoint(provider, src_vols[0]) if src_vols else None
        if not dst or not src:
            raise KsiError("the build node's /var volume or the template's was not found",
                           f"check '{provider.binary} volume ls'", code=Exit.WARM_FAILED)
        # the build node is deleted next: its /var moves into the template (hard links)
        noderun.copy_volume(provider, src, dst, info.rootless, timeout, link_all=True)
        problems = delete_cluster(provider, kind, names.cluster, kubeconfig,
                                  nodes=[names.node])
        if problems:
            raise KsiError("the template's build cluster could not be deleted: "
                           + "; ".join(problems), "run 'ksi warm --rm'", code=Exit.WARM_FAILED)
    return Record(key=inputs.key, uid=os.getuid(), inputs=_plain(inputs),
                  template_image_id=image_id, volume=names.volume,
                  var_digest=tree_digest(provider, dst, info.rootless),
                  entrypoint=entry, cmd=cmd)


def _plain(inputs: Inputs) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(inputs)


def tree_digest(provider: Provider, path: str, rootless: bool) -> str:
    """var_digest of a volume's files (rootless: inside the user namespace that owns them)."""
    if not rootless:
        return var_digest(Path(path))
    import sys

    res = provider.runner.run([provider.binary, "unshare", sys.executable, "-m",
                               "ksi.warm.template", path], env=provider.env, timeout=300,
                              what="digest of the template's /var", code=Exit.WARM_FAILED)
    return res.stdout.strip()
