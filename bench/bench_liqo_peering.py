#!/usr/bin/env python3
"""Real Liqo peering: is `liqoctl peer` safe to run concurrently, and what does it gain?

One consumer and K providers, each a REAL kind cluster (root podman, the node image and the
Liqo v1.0.1 build of tests/e2e/build/build-cache.sh) with Liqo installed as KSI installs it
(local chart, networking module off: this kernel has no WireGuard/Geneve, metric agent off).
Then, R rounds each: the consumer peers with every provider at once (`--mode concurrent`) or
one after the other (`--mode serial`); a round ends when every peer command returned and every
virtual node is Ready; then every peering is removed (`liqoctl unpeer`).

    python3 bench/bench_liqo_peering.py [--providers 7] [--rounds 3] [--mode both]

Prints per round: the peer commands' exit codes, the time until the last one returned and
until the last virtual node was Ready; any ERRO line. Needs root, the cache
(tests/e2e/build/check-cache.sh --liqo) and the Slurm test bed's bridge address 10.79.0.1
(`tests/slurm/testbed up`): the API servers listen there, where the other clusters reach them;
and inotify limits for that many clusters (kind's known issue; 512 instances here).
Takes about (K+1) x 40 s to set up on 2 CPUs (2 at a time: more made kubeadm time out
here), 1 GB of memory per cluster.

Note: after an unpeer, the next virtual kubelet of the same pair waits up to ~20 s for the
previous one's leader lease; so later rounds' "Ready" times include that wait (a KSI job peers
fresh clusters only once).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("KSI_E2E_CACHE", "/var/cache/ksi-e2e"))
IMAGE = os.environ.get("KSI_E2E_NODE_IMAGE", "localhost/ksi-kind-node:v1.34.4")
ADDRESS = "10.79.0.1"     # the test bed's bridge on the host (tests/slurm/testbed)
LIQO_IMAGES = ("liqo-controller-manager", "webhook", "crd-replicator", "virtual-kubelet",
               "proxy")
ENV = dict(os.environ,
           PATH=os.pathsep.join([str(CACHE / "bin"), str(CACHE / "k8s-bin"),
                                 str(CACHE / "liqo-bin"), os.environ.get("PATH", "")]),
           CONTAINERS_CONF=str(ROOT / "tests/e2e/build/containers.conf"),
           KIND_EXPERIMENTAL_PROVIDER="podman")


def sh(argv: list[str], timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=ENV, capture_output=True, text=True, timeout=timeout)


def errors(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip().startswith("ERRO")]


class Cluster:
    def __init__(self, i: int, tmp: Path) -> None:
        self.name = f"ksi-bench-lq{i}"
        self.port = 41900 + i
        self.kubeconfig = tmp / f"{self.name}.kubeconfig"
        self.config = tmp / f"{self.name}.yaml"
        self.config.write_text(
            "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n"
            f"  apiServerAddress: {ADDRESS}\n  apiServerPort: {self.port}\n"
            f"  podSubnet: 10.{100 + i}.0.0/16\n  serviceSubnet: 10.{140 + i}.0.0/16\n")

    def setup(self) -> float:
        t0 = time.monotonic()
        steps = [["kind", "create", "cluster", "--name", self.name, "--config", str(self.config),
                  "--image", IMAGE, "--kubeconfig", str(self.kubeconfig)]]
        steps += [["kind", "load", "image-archive", "--name", self.name,
                   str(CACHE / "liqo-images" / f"ghcr.io_liqotech_{c}_v1.0.1.tar")]
                  for c in LIQO_IMAGES]
        steps.append(["liqoctl", "install", "kind", "--kubeconfig", str(self.kubeconfig),
                      "--cluster-id", self.name, "--disable-telemetry", "--timeout", "600s",
                      "--set", f"apiServer.address=https://{ADDRESS}:{self.port}",
                      "--version", "v1.0.1", "--local-chart-path", str(CACHE / "liqo-chart"),
                      "--set", "networking.enabled=false", "--set", "metricAgent.enabled=false"])
        for argv in steps:
            r = sh(argv)
            if r.returncode != 0 and argv[:2] == ["kind", "create"]:  # kubeadm under load
                self.delete()
                r = sh(argv)
            if r.returncode != 0:
                raise RuntimeError(f"{self.name}: {' '.join(argv[:3])} failed: "
                                   f"{(errors(r.stderr) or r.stderr.splitlines()[-1:])}")
        return time.monotonic() - t0

    def delete(self) -> None:
        sh(["podman", "kill", f"{self.name}-control-plane"], timeout=60)
        sh(["kind", "delete", "cluster", "--name", self.name], timeout=120)


def peer(consumer: Cluster, provider: Cluster) -> tuple[int, float, list[str]]:
    t0 = time.monotonic()
    r = sh(["liqoctl", "peer", "--kubeconfig", str(consumer.kubeconfig), "--remote-kubeconfig",
            str(provider.kubeconfig), "--networking-disabled", "--timeout", "300s"])
    return r.returncode, time.monotonic() - t0, errors(r.stderr)


def wait_virtual_node(consumer: Cluster, provider: Cluster, timeout: float = 300) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = sh(["kubectl", "--kubeconfig", str(consumer.kubeconfig), "wait",
                "--for=condition=Ready", "node", "-l",
                f"liqo.io/remote-cluster-id={provider.name}", "--timeout=60s"], timeout=90)
        if r.returncode == 0:
            return True
        time.sleep(0.5)  # not registered yet: "no matching resources found"
    return False


def one_round(mode: str, consumer: Cluster, providers: list[Cluster]) -> bool:
    t0 = time.monotonic()
    results: dict[str, tuple[int, float, list[str]]] = {}
    if mode == "concurrent":
        lock = threading.Lock()

        def go(p: Cluster) -> None:
            res = peer(consumer, p)
            with lock:
                results[p.name] = res

        threads = [threading.Thread(target=go, args=(p,)) for p in providers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        for p in providers:
            results[p.name] = peer(consumer, p)
    peered = time.monotonic() - t0
    with ThreadPoolExecutor(len(providers)) as pool:
        ready = list(pool.map(lambda p: wait_virtual_node(consumer, p), providers))
    done = time.monotonic() - t0
    codes = [results[p.name][0] for p in providers]
    print(f"  {mode:10s} exit codes {codes}  last peer returned {peered:6.1f} s  "
          f"all {sum(ready)}/{len(providers)} virtual nodes Ready {done:6.1f} s", flush=True)
    for name, (_code, _t, errs) in sorted(results.items()):
        for e in errs:
            print(f"    {name}: {e}")
    for p in providers:
        sh(["liqoctl", "unpeer", "--kubeconfig", str(consumer.kubeconfig),
            "--remote-kubeconfig", str(p.kubeconfig), "--skip-confirm"], timeout=300)
    return all(c == 0 for c in codes) and all(ready)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--providers", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mode", choices=("concurrent", "serial", "both"), default="both")
    ap.add_argument("--setup-parallel", type=int, default=2)
    args = ap.parse_args()
    check = subprocess.run([str(ROOT / "tests/e2e/build/check-cache.sh"), "--liqo"],
                           capture_output=True, text=True, env=ENV)
    if os.geteuid() != 0 or check.returncode != 0:
        print("bench_liqo_peering: needs root and the real kind + Liqo cache:\n" + check.stdout,
              file=sys.stderr)
        return 2
    instances = int(Path("/proc/sys/fs/inotify/max_user_instances").read_text())
    if instances < 32 * (args.providers + 1):  # ~25 each here (the 6th of 128 failed)
        print(f"bench_liqo_peering: fs.inotify.max_user_instances={instances} is too low for "
              f"{args.providers + 1} kind clusters (kube-proxy fails with 'too many open "
              "files'): sysctl -w fs.inotify.max_user_instances=512 "
              "fs.inotify.max_user_watches=524288", file=sys.stderr)
        return 2
    if ADDRESS not in sh(["ip", "-4", "addr"]).stdout:
        print(f"bench_liqo_peering: {ADDRESS} is not on this host: run tests/slurm/testbed up",
              file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="ksi-bench-liqo-"))
    clusters = [Cluster(i, tmp) for i in range(args.providers + 1)]
    consumer, providers = clusters[0], clusters[1:]
    ok = True
    try:
        t0 = time.monotonic()
        with ThreadPoolExecutor(args.setup_parallel) as pool:
            setups = list(pool.map(Cluster.setup, clusters))
        print(f"{len(clusters)} clusters with Liqo in {time.monotonic() - t0:.0f} s "
              f"(each {min(setups):.0f}-{max(setups):.0f} s: create, load 5 images, install; "
              f"{args.setup_parallel} at a time, {os.cpu_count()} CPUs)", flush=True)
        modes = ("concurrent", "serial") if args.mode == "both" else (args.mode,)
        for r in range(args.rounds):
            print(f"round {r + 1}:", flush=True)
            for mode in modes:
                ok = one_round(mode, consumer, providers) and ok
    finally:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(Cluster.delete, clusters))
        shutil.rmtree(tmp, ignore_errors=True)
    print("every peering succeeded" if ok else "SOME PEERINGS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
