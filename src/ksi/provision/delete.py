"""Deleting one kind cluster: the one way teardown, `ksi gc` and the reaper of a dead node do
it (and what `--dry-run` shows of it)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ksi.errors import KsiError

if TYPE_CHECKING:
    from ksi.provision.kind import Kind
    from ksi.provision.providers import Provider

log = logging.getLogger("ksi.cluster")


def node_names(cluster: str, nodes: list[dict]) -> list[str]:
    """kind's node container names for a config's nodes (control-plane, worker, worker2…;
    kind pkg/cluster/internal/providers/common MakeNodeNamer)."""
    counts: dict[str, int] = {}
    names = []
    for node in nodes or [{}]:
        role = node.get("role", "control-plane")
        counts[role] = counts.get(role, 0) + 1
        suffix = "" if counts[role] == 1 else str(counts[role])
        names.append(f"{cluster}-{role}{suffix}")
    return names


def _kind_delete(provider: Provider, kind: Kind, cluster: str, kubeconfig: Optional[Path],
                 attempts: int = 2) -> list[str]:
    """kind delete; after a failure (seen: podman/runc "cleaning up container" errors under
    load) force-remove the nodes and try once more. Without kind: the force removal only."""
    if not kind.runner.which(kind.binary):
        log.info("kind is not on PATH: removing the node containers of %s directly", cluster)
        return []
    last = ""
    for attempt in range(1, attempts + 1):
        try:
            kind.delete(cluster, kubeconfig)
            return []
        except KsiError as exc:
            log.info("kind delete failed (attempt %d/%d): %s", attempt, attempts, exc.cause)
            last = exc.cause
            try:
                provider.remove(provider.node_containers(cluster))
            except KsiError as rm_exc:
                log.info("force removal failed too: %s", rm_exc.cause)
    return [last]


def delete_cluster(provider: Provider, kind: Kind, cluster: str, kubeconfig: Optional[Path],
                   *, nodes: list[str], logs_to: Optional[Path] = None) -> list[str]:
    """Delete the cluster: its logs first when logs_to is given (after a failure), then kill
    its nodes, kind delete (retried with a force removal), remove what is left and podman's
    node volumes (of `nodes`). Returns the problems left (empty: all gone)."""
    if logs_to is not None:
        try:
            kind.export_logs(cluster, logs_to)
            log.info("cluster logs exported to %s", logs_to)
        except KsiError as exc:
            log.info("could not export cluster logs: %s", exc.cause)
    # The cluster is discarded: kill its nodes at once instead of kind's graceful stop
    # (~10 s per node with podman, measured), so teardown fits in Slurm's KillWait; kind
    # delete then removes the stopped nodes, their volumes and the kubeconfig entries.
    try:
        provider.kill(provider.node_containers(cluster))
    except KsiError as exc:
        log.info("could not kill the node containers first: %s", exc.cause)
    problems = _kind_delete(provider, kind, cluster, kubeconfig)
    try:
        left = provider.node_containers(cluster)
        if left:
            provider.remove(left)
        provider.remove_volumes(provider.node_volumes(nodes))
    except KsiError as exc:
        problems.append(f"leftover node containers or volumes: {exc.cause}")
    return problems
