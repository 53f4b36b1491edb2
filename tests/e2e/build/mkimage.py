#!/usr/bin/env python3
"""Assemble a docker-archive image tarball (the `docker save` layout) from
ready-made uncompressed layer tarballs, without any registry or daemon.

Output layout:
    manifest.json              [{"Config": ..., "RepoTags": [...], "Layers": [...]}]
    <config-sha256>.json       image config (os/arch, rootfs.diff_ids, config)
    <layer-sha256>/layer.tar   each layer, uncompressed

`ctr images import` (containerd) and `podman load` both accept this format.

Usage:
    mkimage.py --out img.tar --tag registry.k8s.io/pause:3.10.1 [--tag ...] \
        --layer base.tar [--layer bin.tar ...] \
        [--entrypoint '["/pause"]'] [--cmd '[]'] [--env PATH=...] [--workdir /] [--user 0]
"""
import argparse
import hashlib
import io
import json
import os
import tarfile
import time


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def add_bytes(tar, name, data):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mtime = 0
    ti.mode = 0o644
    tar.addfile(ti, io.BytesIO(data))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--tag", action="append", required=True)
    ap.add_argument("--layer", action="append", required=True)
    ap.add_argument("--entrypoint")
    ap.add_argument("--cmd")
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--workdir")
    ap.add_argument("--user")
    ap.add_argument("--arch", default="amd64")
    a = ap.parse_args()

    diff_ids = [sha256_file(p) for p in a.layer]
    env = a.env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    cfg = {"Env": env}
    if a.entrypoint:
        cfg["Entrypoint"] = json.loads(a.entrypoint)
    if a.cmd:
        cfg["Cmd"] = json.loads(a.cmd)
    if a.workdir:
        cfg["WorkingDir"] = a.workdir
    if a.user:
        cfg["User"] = a.user
    config = {
        "architecture": a.arch,
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + d for d in diff_ids]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "ksi mkimage.py"}
                    for _ in diff_ids],
    }
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [{
        "Config": config_name,
        "RepoTags": a.tag,
        "Layers": [d + "/layer.tar" for d in diff_ids],
    }]
    tmp = a.out + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar:
        done = set()
        for d, p in zip(diff_ids, a.layer):
            if d in done:
                continue
            done.add(d)
            ti = tar.gettarinfo(p, arcname=d + "/layer.tar")
            ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname, ti.mode = 0, 0, 0, "", "", 0o644
            with open(p, "rb") as f:
                tar.addfile(ti, f)
        add_bytes(tar, config_name, config_bytes)
        add_bytes(tar, "manifest.json", json.dumps(manifest).encode())
    os.replace(tmp, a.out)
    print(f"{a.out}: {', '.join(a.tag)} ({len(diff_ids)} layer(s), config {config_name[:19]})")


if __name__ == "__main__":
    t0 = time.time()
    main()
