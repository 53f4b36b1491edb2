"""Kubeconfig files as kind writes them and kubectl reads them.

kind: pkg/cluster/internal/kubeconfig/internal/kubeconfig/
- paths.go: --kubeconfig, else $KUBECONFIG list (empty/duplicates dropped), else
  $HOME/.kube/config; pathForMerge = the first existing file, else the last listed.
- lock.go: ``<file>.lock`` created with O_CREATE|O_EXCL, ONE attempt (kind v0.33.0
  lockFile); failure is wrapped as "failed to lock config file" (merge.go, remove.go).
  The only retries are create.go's export backoff (0/1/50/100 ms, in kind.py).
- write.go (encode): directories 0755, file written in place with mode 0600.
- remove.go: drop kind-<name> cluster/user/context, unset current-context.
"""

from __future__ import annotations

import base64
import errno
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple


class KubeconfigError(Exception):
    pass


def _yaml():
    import yaml  # lazy: PyYAML import costs ~20 ms

    return yaml


def home_config() -> str:
    return os.path.join(os.environ.get("HOME", "/root"), ".kube", "config")


def paths(explicit: str = "") -> List[str]:
    if explicit:
        return [explicit]
    seen: List[str] = []
    for p in os.environ.get("KUBECONFIG", "").split(os.pathsep):
        if p and p not in seen:
            seen.append(p)
    if seen:
        return seen
    return [home_config()]


def path_for_merge(explicit: str = "") -> str:
    ps = paths(explicit)
    if len(ps) == 1:
        return ps[0]
    for p in ps:
        if os.path.isfile(p):
            return p
    return ps[-1]


def lock_file(filename: str) -> None:
    d = os.path.dirname(filename) or "."
    if not os.path.exists(d):
        os.makedirs(d, 0o755, exist_ok=True)
    # one O_EXCL attempt, no retry (kind v0.33.0 pkg/cluster/internal/kubeconfig/internal/
    # kubeconfig/lock.go lockFile)
    try:
        fd = os.open(filename + ".lock", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0)
    except OSError as e:
        raise KubeconfigError(
            "failed to lock config file: " + go_path_error("open", filename + ".lock", e)
        ) from None
    os.close(fd)


def unlock_file(filename: str) -> None:
    try:
        os.remove(filename + ".lock")
    except OSError:
        pass


def go_path_error(op: str, p: str, e: OSError) -> str:
    """Go's *PathError text: ``open /x: file exists``."""
    msgs = {
        errno.EEXIST: "file exists",
        errno.ENOENT: "no such file or directory",
        errno.EACCES: "permission denied",
        errno.ENOTDIR: "not a directory",
        errno.EISDIR: "is a directory",
        errno.EROFS: "read-only file system",
    }
    return f"{op} {p}: {msgs.get(e.errno or 0, (e.strerror or str(e)).lower())}"


def read(p: str) -> Dict[str, Any]:
    try:
        with open(p, encoding="utf-8") as f:
            y = _yaml()
            data = y.load(f, Loader=getattr(y, "CSafeLoader", y.SafeLoader))
    except FileNotFoundError:
        return {}
    return data or {}


def write(cfg: Dict[str, Any], p: str) -> None:
    d = os.path.dirname(p) or "."
    if not os.path.exists(d):
        os.makedirs(d, 0o755, exist_ok=True)
    y = _yaml()
    text = y.dump(
        cfg,
        Dumper=getattr(y, "CSafeDumper", y.SafeDumper),
        default_flow_style=False,
        sort_keys=True,
    )
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def _named(lst: Optional[List[Dict[str, Any]]], name: str) -> Optional[Dict[str, Any]]:
    for x in lst or []:
        if isinstance(x, dict) and x.get("name") == name:
            return x
    return None


def _upsert(lst: List[Dict[str, Any]], item: Dict[str, Any]) -> None:
    for i, x in enumerate(lst):
        if x.get("name") == item["name"]:
            lst[i] = item
            return
    lst.append(item)


def write_merged(kind_cfg: Dict[str, Any], explicit: str = "") -> str:
    p = path_for_merge(explicit)
    lock_file(p)
    try:
        existing = read(p)
        for key in ("clusters", "users", "contexts"):
            lst = existing.get(key) or []
            _upsert(lst, kind_cfg[key][0])
            existing[key] = lst
        existing["current-context"] = kind_cfg["current-context"]
        existing.setdefault("apiVersion", "v1")
        existing.setdefault("kind", "Config")
        existing.setdefault("preferences", {})
        write(existing, p)
    finally:
        unlock_file(p)
    return p


def remove_kind(cluster_name: str, explicit: str = "") -> None:
    key = "kind-" + cluster_name
    for p in paths(explicit):
        lock_file(p)
        try:
            existing = read(p)
            mutated = False
            for k in ("clusters", "users", "contexts"):
                lst = existing.get(k) or []
                kept = [x for x in lst if x.get("name") != key]
                if len(kept) != len(lst):
                    mutated = True
                    existing[k] = kept
            if existing.get("current-context") == key:
                existing["current-context"] = ""
                mutated = True
            if mutated:
                write(existing, p)
        finally:
            unlock_file(p)


def fake_pem(kind: str, payload: str) -> str:
    body = base64.b64encode((f"ksi-emu {kind} {payload}").encode()).decode()
    pem = f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----\n"
    return base64.b64encode(pem.encode()).decode()


def pem_payload(data_b64: str) -> str:
    try:
        pem = base64.b64decode(data_b64).decode()
        body = pem.splitlines()[1]
        txt = base64.b64decode(body).decode()
        return txt.split(" ", 2)[2]
    except Exception:  # noqa: BLE001 - any garbage means "not ours"
        return ""


def kind_config(name: str, server: str, ca: str, client: str) -> Dict[str, Any]:
    key = "kind-" + name
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "current-context": key,
        "clusters": [
            {
                "name": key,
                "cluster": {
                    "server": server,
                    "certificate-authority-data": fake_pem("CERTIFICATE", ca),
                },
            }
        ],
        "users": [
            {
                "name": key,
                "user": {
                    "client-certificate-data": fake_pem("CERTIFICATE", client),
                    "client-key-data": fake_pem("RSA PRIVATE KEY", client),
                },
            }
        ],
        "contexts": [{"name": key, "context": {"cluster": key, "user": key}}],
    }


# ---------------------------------------------------------------------- kubectl side


def load_for_kubectl(explicit: str = "") -> Tuple[Dict[str, Any], List[str]]:
    """client-go loading rules: --kubeconfig (must exist) or the merged
    $KUBECONFIG list (first file wins per name) or ~/.kube/config."""
    if explicit:
        if not os.path.exists(explicit):
            raise KubeconfigError(f"stat {explicit}: no such file or directory")
        return read(explicit), [explicit]
    ps = paths("")
    merged: Dict[str, Any] = {"clusters": [], "users": [], "contexts": []}
    for p in ps:
        cfg = read(p)
        for k in ("clusters", "users", "contexts"):
            for item in cfg.get(k) or []:
                if _named(merged[k], item.get("name")) is None:
                    merged[k].append(item)
        if not merged.get("current-context") and cfg.get("current-context"):
            merged["current-context"] = cfg["current-context"]
        for k, v in cfg.items():
            if k not in merged:
                merged[k] = v
    return merged, ps


def named(lst: Optional[List[Dict[str, Any]]], name: str) -> Optional[Dict[str, Any]]:
    return _named(lst, name)
