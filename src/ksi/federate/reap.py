"""Delete the cluster of a node whose KSI process died (SIGKILL, OOM): run ON that node.

A surviving node of the job starts it there as an extra job step:

    srun --jobid=J --overlap -N1 -n1 -w HOST python -m ksi.federate.reap HELLO.json

HELLO.json is the dead node's hello message from the rendezvous directory (cluster name,
provider, state directory, pid). Nothing is touched if that pid is still alive on this host
(it then gets SIGTERM and tears down itself)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap(hello: dict[str, Any]) -> list[str]:
    """Delete hello's cluster on this host; returns the problems left."""
    from ksi.errors import KsiError
    from ksi.provision import providers
    from ksi.provision.delete import delete_cluster
    from ksi.provision.kind import Kind
    from ksi.runner import Runner

    host = socket.gethostname().split(".")[0]
    if str(hello.get("host", "")).split(".")[0] != host:
        return [f"this is {host}, not {hello.get('host')}"]
    pid = int(hello.get("pid") or 0)
    if pid and _alive(pid):
        os.kill(pid, signal.SIGTERM)  # it is alive after all: let it tear down itself
        return []
    runner = Runner()
    provider = providers.get(str(hello.get("provider") or "nerdctl"), runner)
    kind = Kind(runner, provider, systemd_scope=bool(hello.get("systemd_scope")))
    cluster = str(hello["cluster"])
    kubeconfig = Path(str(hello.get("kubeconfig") or ""))
    problems = []
    # a 'kind create' of the dead process may still be running: give it a moment to end
    for _ in range(2):
        try:
            nodes = provider.node_containers(cluster)
        except KsiError as exc:
            problems = [exc.cause]
        else:
            problems = delete_cluster(provider, kind, cluster,
                                      kubeconfig if kubeconfig.is_file() else None,
                                      nodes=nodes)
        time.sleep(0.5)
    state = Path(str(hello.get("state_dir") or ""))
    if state.name == cluster and state.is_dir():
        shutil.rmtree(state, ignore_errors=True)
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m ksi.federate.reap HELLO.json", file=sys.stderr)
        return 64
    try:
        with open(argv[0], encoding="utf-8") as fh:
            hello = json.load(fh)
    except (OSError, ValueError) as exc:
        print(f"ksi reap: cannot read {argv[0]}: {exc}", file=sys.stderr)
        return 66
    problems = reap(hello)
    for p in problems:
        print(f"ksi reap: {p}", file=sys.stderr)
    if not problems:
        print(f"ksi reap: deleted cluster {hello.get('cluster')} of the dead KSI process "
              f"{hello.get('pid')} on {hello.get('host')}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
