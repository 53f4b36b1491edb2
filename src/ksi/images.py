"""Offline images: the archive cache on the shared filesystem.

- Node image: loaded into the runtime from an archive only when the runtime lacks it
  (`provider.image_present`, then `provider.load_archive`).
- Workload images: `--preload ARCHIVE` -> `kind load image-archive` right after create.
- Liqo's images (one list, here) preloaded into each cluster before `liqoctl install` when
  the archive directory has them.
- The NVIDIA device plugin's image (`gpu_images`), loaded into a cluster with GPUs.
- `ksi images save IMAGE... [--liqo VERSION] [--gpu] [--dir D]` fills the cache
  (`<runtime> save -o`), `ksi images ls` lists it.

Archives are named after the image (`archive_name`), so a lookup needs no index; the image
names inside an archive are read from the archive itself (docker-archive manifest.json or
OCI index.json), so `--image-archive PATH` also tells KSI which node image to use.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from ksi.errors import Exit, KsiError

if TYPE_CHECKING:
    from ksi.provision.kind import Kind
    from ksi.provision.providers import Provider

log = logging.getLogger("ksi.images")

# Liqo v1.0 (ghcr.io/liqotech/*, the images of deployments/liqo/values.yaml of v1.0.1).
# gateway*, virtual-kubelet are needed only at peering time, uninstaller only at uninstall.
LIQO_REGISTRY = "ghcr.io/liqotech"
LIQO_CORE = ("liqo-controller-manager", "webhook", "crd-replicator", "virtual-kubelet")
LIQO_NETWORKING = ("ipam", "fabric", "gateway", "gateway/wireguard", "gateway/geneve")
LIQO_METRICS = ("metric-agent", "cert-creator")   # cert-creator: the agent's init container
LIQO_COMPONENTS = (*LIQO_CORE, *LIQO_NETWORKING, *LIQO_METRICS, "proxy", "telemetry",
                   "uninstaller")
DEFAULT_LIQO_VERSION = "v1.0.1"
# GPUs (ksi.gpu): the NVIDIA device plugin's image (k8s-device-plugin's
# deployments/static/nvidia-device-plugin.yml of that tag), loaded into GPU clusters.
NVIDIA_DEVICE_PLUGIN = "nvcr.io/nvidia/k8s-device-plugin:v0.20.0"
SUFFIXES = (".tar", ".tar.gz", ".tgz", ".oci.tar")


def liqo_images(version: str = DEFAULT_LIQO_VERSION,
                components: Sequence[str] = LIQO_COMPONENTS) -> list[str]:
    """The images of those Liqo components (default: every image install, peer and
    uninstall of that version run)."""
    v = version if version.startswith("v") else "v" + version
    return [f"{LIQO_REGISTRY}/{c}:{v}" for c in components]


def liqo_running(networking: bool = True, values: Sequence[str] = ()) -> tuple[str, ...]:
    """The components a KSI installation runs: no telemetry (--disable-telemetry), no
    uninstaller (KSI deletes the clusters instead), networking, metric agent and proxy
    unless switched off by chart values."""
    off = {v.replace(" ", "").lower() for v in values}
    out = list(LIQO_CORE)
    if networking:
        out += LIQO_NETWORKING
    if "metricagent.enabled=false" not in off:
        out += LIQO_METRICS
    if "proxy.enabled=false" not in off:
        out.append("proxy")
    return tuple(out)


def gpu_images() -> list[str]:
    """The images a cluster with GPUs needs (`ksi images save --gpu`)."""
    return [NVIDIA_DEVICE_PLUGIN]


def normalize(image: str) -> str:
    """docker.io/library/x:latest form, so that 'busybox' and the full name compare equal."""
    ref = image.split("@", 1)[0]
    first = ref.split("/", 1)[0]
    if "/" not in ref or not ("." in first or ":" in first or first == "localhost"):
        ref = "docker.io/" + (ref if "/" in ref else "library/" + ref)
    if ":" not in ref.rsplit("/", 1)[-1]:
        ref += ":latest"
    return ref


def archive_name(image: str) -> str:
    """File name of an image's archive: ghcr.io/liqotech/gateway/geneve:v1.0.1 ->
    ghcr.io_liqotech_gateway_geneve_v1.0.1.tar"""
    return re.sub(r"[^A-Za-z0-9._-]", "_", normalize(image)) + ".tar"


def archive_tags(path: str | Path) -> list[str]:
    """Image names inside an archive (docker-archive or OCI layout tar), normalised."""
    import tarfile

    tags: list[str] = []
    try:
        with tarfile.open(str(path), mode="r:*") as tf:
            names = set(tf.getnames())
            for member in ("manifest.json", "./manifest.json"):
                if member in names:
                    fh = tf.extractfile(member)
                    for ent in json.loads(fh.read().decode()) if fh else []:
                        tags += ent.get("RepoTags") or []
                    break
            for member in ("index.json", "./index.json"):
                if member in names and not tags:
                    fh = tf.extractfile(member)
                    idx = json.loads(fh.read().decode()) if fh else {}
                    for m in idx.get("manifests", []):
                        ann = m.get("annotations") or {}
                        name = ann.get("io.containerd.image.name") or \
                            ann.get("org.opencontainers.image.ref.name")
                        if name and ("/" in name or ":" in name):
                            tags.append(name)
                    break
    except (OSError, tarfile.TarError, ValueError, KeyError) as exc:
        raise KsiError(f"cannot read image archive {path}: {exc}",
                       "re-create it with 'ksi images save IMAGE'",
                       code=Exit.IMAGE_FAILED) from exc
    return [normalize(t) for t in tags]


def find_archive(directory: str | Path, image: str) -> Optional[Path]:
    """The archive of image in the cache directory (None when absent)."""
    if not directory:
        return None
    p = Path(directory) / archive_name(image)
    return p if p.is_file() else None


def check_archive(path: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise KsiError(f"image archive {path} does not exist",
                       "pass an archive made with 'ksi images save' (on a shared filesystem)",
                       code=Exit.IMAGE_FAILED)
    if not os.access(p, os.R_OK):
        raise KsiError(f"image archive {path} is not readable for you",
                       f"fix the permissions of {path}", code=Exit.IMAGE_FAILED)
    return p


def ensure_node_image(provider: Provider, image: str, archive: Path) -> str:
    """Load archive into the runtime unless the runtime already has image.
    Returns 'present' or 'loaded'."""
    if provider.image_present(image):
        return "present"
    provider.load_archive(str(archive))
    if not provider.image_present(image):
        raise KsiError(f"{archive} was loaded but the runtime still lacks {image}",
                       "check that the archive holds that image: 'ksi images ls'",
                       code=Exit.IMAGE_FAILED)
    return "loaded"


def preload(kind: Kind, cluster: str, archives: list[str]) -> list[str]:
    """`kind load image-archive` each archive into the cluster; returns what was loaded."""
    done = []
    for a in archives:
        kind.load_archive(cluster, str(check_archive(a)))
        done.append(str(a))
    return done


def preload_liqo(kind: Kind, cluster: str, directory: str | Path,
                 version: str = DEFAULT_LIQO_VERSION,
                 components: Sequence[str] = LIQO_COMPONENTS) -> list[str]:
    """Call before `liqoctl install`: loads the archives of those components that the cache
    has (those it lacks are pulled by the cluster, and named here)."""
    if not directory:
        return []
    wanted = liqo_images(version, components)
    found = {i: find_archive(directory, i) for i in wanted}
    archives = [str(a) for a in found.values() if a is not None]
    if archives:
        missing = [i.split("/", 2)[-1] for i, a in found.items() if a is None]
        if missing:
            log.info("not in %s: %s (the cluster pulls them)", directory, ", ".join(missing))
        return preload(kind, cluster, archives)
    return []


def save(provider: Provider, images: list[str], directory: Path, *, pull: bool = True
         ) -> list[tuple[str, Path, str]]:
    """Write one archive per image into directory (pulling it first when missing).
    Returns (image, path, 'saved'|'kept')."""
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for image in images:
        dest = directory / archive_name(image)
        if dest.is_file() and normalize(image) in archive_tags(dest):
            out.append((image, dest, "kept"))
            continue
        if not provider.image_present(image) and pull:
            provider.pull(image)
        tmp = directory / f".{dest.name}.{os.getpid()}.tmp"
        try:
            provider.save_archive(image, str(tmp))
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        out.append((image, dest, "saved"))
    return out


def listing(directory: Path) -> list[tuple[Path, int, list[str]]]:
    """(archive, bytes, images) for every archive in the cache directory."""
    rows = []
    for p in sorted(directory.iterdir()) if directory.is_dir() else []:
        if p.name.startswith(".") or not p.name.endswith(SUFFIXES) or not p.is_file():
            continue
        try:
            tags = archive_tags(p)
        except KsiError:
            tags = ["(unreadable)"]
        rows.append((p, p.stat().st_size, tags))
    return rows
