"""What warm start asks of the runtime beyond kind (podman): start a node container as kind
would (kind v0.33.0 pkg/cluster/internal/providers/podman/provision.go runArgsForNode and
commonArgs), stop, commit and inspect it, and make and copy its /var volume."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

from ksi.errors import Exit, KsiError
from ksi.provision.providers.base import CLUSTER_LABEL, ROLE_LABEL

if TYPE_CHECKING:
    from ksi.provision.providers import Provider

WHAT = Exit.WARM_FAILED


def _json_list(text: str, what: str, empty: bool = False) -> list[dict[str, Any]]:
    """The objects of a JSON list (or one object); an empty list only where `empty`."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise KsiError(f"{what} printed no JSON ({exc})", f"check '{what}' by hand",
                       code=WHAT) from exc
    if isinstance(data, dict):
        data = [data]
    if isinstance(data, list) and not data and empty:
        return []
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        raise KsiError(f"{what} printed no object", f"check '{what}' by hand", code=WHAT)
    return data


def _run(p: Provider, args: Sequence[str], what: str, timeout: float = 120,
         input: Optional[str] = None) -> str:  # noqa: A002 - as the runner's
    return p.runner.run([p.binary, *args], env=p.env, timeout=timeout, what=what, code=WHAT,
                        input=input).stdout


def image_config(p: Provider, image: str) -> tuple[str, list[str], list[str]]:
    """(id, entrypoint, cmd) of an image; KsiError when it is absent."""
    data = _json_list(_run(p, ["image", "inspect", image], f"{p.binary} image inspect"),
                      f"{p.binary} image inspect")[0]
    config = data.get("Config") or {}
    return (str(data.get("Id") or ""), list(config.get("Entrypoint") or []),
            list(config.get("Cmd") or []))


def _field(p: Provider, args: Sequence[str], key: str) -> Optional[str]:
    """One field of `<runtime> <args>` (an inspect), None when the object is absent."""
    res = p.runner.run([p.binary, *args], env=p.env, timeout=60, check=False)
    if res.returncode != 0:
        return None
    try:
        return str(_json_list(res.stdout, " ".join(args[:2]))[0].get(key) or "") or None
    except KsiError:
        return None


def image_id(p: Provider, image: str) -> Optional[str]:
    """The image's id, None when the runtime does not have it."""
    return _field(p, ["image", "inspect", image], "Id")


def volume_mountpoint(p: Provider, name: str) -> Optional[str]:
    """Where a volume's files are on the host, None when there is no such volume."""
    return _field(p, ["volume", "inspect", name], "Mountpoint")


def volume_create(p: Provider, name: str, labels: Mapping[str, str]) -> str:
    """A named volume (name '' : an anonymous one, as kind makes); returns its name."""
    args = ["volume", "create", *[f"--label={k}={v}" for k, v in labels.items()]]
    return _run(p, [*args, *([name] if name else [])], f"{p.binary} volume create").strip()


# containerd's content store: content-addressed blobs, written once and never changed in
# place (a clone that deletes one only unlinks its own link), so clones hard-link them
SHARED = "lib/containerd/io.containerd.content.v1.content"

# cp -a of $1 into $2 (reflinks where the filesystem has them), but the subtree $3 as hard
# links; the directories above it keep their owner, mode and mtime
COPY = r"""set -euo pipefail
shopt -s dotglob nullglob
src=$1 dst=$2 keep=$3
copy() {
  local rel=$1 e name r
  for e in "$src${rel:+/$rel}"/*; do
    name=${e##*/}
    r=${rel:+$rel/}$name
    if [ "$r" = "$keep" ]; then
      cp -al "$e" "$dst${rel:+/$rel}/"
    elif [ -d "$e" ] && [ ! -L "$e" ] && [[ "$keep" == "$r/"* ]]; then
      mkdir -p "$dst/$r"
      chown --reference="$e" "$dst/$r"
      chmod --reference="$e" "$dst/$r"
      copy "$r"
      touch --reference="$e" "$dst/$r"
    else
      cp -a --reflink=auto "$e" "$dst${rel:+/$rel}/"
    fi
  done
}
copy ""
"""


def copy_argv(p: Provider, src: str, dst: str, rootless: bool, link_all: bool = False
              ) -> list[str]:
    """Copy a volume's content into another: hard links for the content store (all of it
    with link_all: the source is deleted next), `cp -a` for the rest; rootless: inside the
    user namespace that owns the files."""
    src, dst = src.rstrip("/"), dst.rstrip("/")
    cmd = ["cp", "-al", f"{src}/.", f"{dst}/"] if link_all else \
        ["bash", "-c", COPY, "copy", src, dst, SHARED]
    return [p.binary, "unshare", *cmd] if rootless else cmd


def copy_volume(p: Provider, src: str, dst: str, rootless: bool, timeout: float,
                link_all: bool = False) -> None:
    p.runner.run(copy_argv(p, src, dst, rootless, link_all=link_all), env=p.env,
                 timeout=timeout, what="copy of the template's /var", code=WHAT)


def stop(p: Provider, name: str, timeout: int = 5) -> None:
    _run(p, ["stop", "--time", str(timeout), name], f"{p.binary} stop", timeout=timeout + 60)


def commit(p: Provider, container: str, image: str, entrypoint: list[str], cmd: list[str],
           labels: Mapping[str, str]) -> str:
    """Commit a stopped container as image with this entrypoint and cmd; the image id."""
    changes = [f"ENTRYPOINT {json.dumps(entrypoint)}", f"CMD {json.dumps(cmd)}",
               *[f"LABEL {k}={v}" for k, v in labels.items()]]
    args = ["commit", "--quiet", *[a for c in changes for a in ("--change", c)], container,
            image]
    return _run(p, args, f"{p.binary} commit", timeout=600).strip()


def remove_image(p: Provider, image: str) -> None:
    p.runner.run([p.binary, "image", "rm", "--force", image], env=p.env, timeout=120,
                 check=False)


def exec_in(p: Provider, container: str, argv: Sequence[str], what: str,
            input: Optional[str] = None, timeout: float = 120) -> str:  # noqa: A002
    flags = ["-i"] if input is not None else []
    return _run(p, ["exec", *flags, container, *argv], what, timeout=timeout, input=input)


def network() -> str:
    """kind's podman network (KIND_EXPERIMENTAL_PODMAN_NETWORK, default 'kind')."""
    return os.environ.get("KIND_EXPERIMENTAL_PODMAN_NETWORK", "") or "kind"


def run_argv(p: Provider, *, name: str, hostname: str, cluster: str, image: str, volume: str,
             node: Mapping[str, Any], api_address: str, api_port: int, rootless: bool,
             devmapper: bool = False) -> list[str]:
    """`podman run` of one control-plane node as kind would start it, from the kind
    config's node (extraMounts, extraPortMappings) and the API server's host address."""
    args = [p.binary, "run", "--name", name, "--hostname", hostname,
            "--label", f"{ROLE_LABEL}={node.get('role', 'control-plane')}",
            "--privileged", "--tmpfs", "/tmp", "--tmpfs", "/run",
            "--volume", f"{volume}:/var:suid,exec,dev",
            "--volume", "/lib/modules:/lib/modules:ro",
            "-e", "KIND_EXPERIMENTAL_CONTAINERD_SNAPSHOTTER",
            "--detach", "--tty", "--net", network(),
            "--label", f"{CLUSTER_LABEL}={cluster}",
            "-e", "container=podman", "--cgroupns=private"]
    if devmapper:
        args += ["--volume", "/dev/mapper:/dev/mapper"]
    if rootless:
        args += ["--device", "/dev/fuse"]
    for m in node.get("extraMounts") or []:
        opts = ["ro"] if m.get("readOnly") else []
        bind = f"{os.path.abspath(m['hostPath'])}:{m['containerPath']}"
        args.append(f"--volume={bind}" + (f":{','.join(opts)}" if opts else ""))
    mappings = [*(node.get("extraPortMappings") or []),
                {"listenAddress": api_address, "hostPort": api_port, "containerPort": 6443}]
    for pm in mappings:
        listen = pm.get("listenAddress") or "0.0.0.0"
        proto = str(pm.get("protocol") or "TCP").lower()
        args.append(f"--publish={listen}:{pm['hostPort']}:{pm['containerPort']}/{proto}")
    args += ["-e", "KUBECONFIG=/etc/kubernetes/admin.conf", image]
    return args


def labelled(p: Provider, what: str, label: str) -> list[tuple[str, str]]:
    """(name, the label's value) of the images or volumes (what) that carry label."""
    if what == "image":
        args = ["images", "--filter", f"label={label}", "--format", "json"]
    else:
        args = ["volume", "ls", "--filter", f"label={label}", "--format", "json"]
    text = _run(p, args, f"{p.binary} {args[0]} ls").strip()
    if not text or text == "null":
        return []
    out = []
    for item in _json_list(text, f"{p.binary} {what} ls", empty=True):
        labels = item.get("Labels") or {}
        name = item.get("Name") or ((item.get("Names") or [""])[0]) or item.get("Id", "")
        out.append((str(name), str(labels.get(label, ""))))
    return out
