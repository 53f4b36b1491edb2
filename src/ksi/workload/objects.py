"""What a manifest run's files ask for, read locally before anything is applied.

Targets are the objects KSI waits for, with Kubernetes' own notion of "done":
- batch: Jobs, and Pods whose restartPolicy is Never or OnFailure (they end);
- service: Deployments, StatefulSets, DaemonSets, and Pods with restartPolicy Always (the
  API default for a bare Pod): they never end by themselves, KSI waits until they are ready.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ksi.errors import Exit, KsiError

SERVICE_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
PLURALS = {"Pod": "pods", "Job": "jobs.batch", "Deployment": "deployments.apps",
           "StatefulSet": "statefulsets.apps", "DaemonSet": "daemonsets.apps"}


@dataclass
class Target:
    kind: str          # Job | Pod | Deployment | StatefulSet | DaemonSet
    namespace: str
    name: str
    batch: bool        # ends by itself (Job, Pod Never/OnFailure)
    selector: dict[str, str] = field(default_factory=dict)  # its pods' labels (workloads)
    source: str = ""   # the manifest file
    done: bool = False   # batch: Complete / Succeeded
    ready: bool = False  # service: ready (as `kubectl rollout status` says)

    @property
    def ref(self) -> str:
        return f"{self.kind.lower()} {self.namespace}/{self.name}"


@dataclass
class Manifests:
    paths: list[Path]
    docs: list[tuple[Path, dict[str, Any]]]
    targets: list[Target]


def namespace_of(doc: dict[str, Any]) -> str:
    """The namespace an object lands in (KSI's kubeconfig context has no namespace set)."""
    return (doc.get("metadata") or {}).get("namespace") or "default"


def _target(path: Path, d: dict[str, Any]) -> Target | None:
    kind = d.get("kind")
    name = (d.get("metadata") or {}).get("name")
    if not name or kind not in PLURALS:
        return None
    spec = d.get("spec") or {}
    if kind == "Pod":
        policy = spec.get("restartPolicy") or "Always"  # the API's default for a Pod
        return Target(kind, namespace_of(d), name, policy in ("Never", "OnFailure"),
                      source=str(path))
    if kind == "Job":
        return Target(kind, namespace_of(d), name, True, source=str(path))
    labels = ((spec.get("selector") or {}).get("matchLabels")
              or ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {})
    return Target(kind, namespace_of(d), name, False, selector=dict(labels), source=str(path))


def read_manifests(paths: list[Path]) -> Manifests:
    """Parse every file (missing or unparsable files fail here, before anything is applied)
    and find the targets."""
    import yaml

    docs: list[tuple[Path, dict[str, Any]]] = []
    for p in paths:
        if not p.is_file():
            raise KsiError(f"manifest {p} does not exist", "pass existing manifest files",
                           code=Exit.WORKLOAD_MISSING)
        try:
            loaded = list(yaml.safe_load_all(p.read_text()))
        except (OSError, yaml.YAMLError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise KsiError(f"manifest {p} cannot be read: {first}", f"correct {p}",
                           code=Exit.MANIFEST_FAILED) from exc
        for d in loaded:
            items = (d.get("items") or []) if isinstance(d, dict) and d.get("kind") == "List" \
                else [d]
            for item in items:
                if not item:
                    continue
                if not isinstance(item, dict) or not item.get("kind") \
                        or not item.get("apiVersion"):
                    raise KsiError(f"manifest {p}: a document without apiVersion and kind",
                                   f"correct {p}", code=Exit.MANIFEST_FAILED)
                docs.append((p, item))
    targets = [t for t in (_target(p, d) for p, d in docs) if t is not None]
    return Manifests(paths, docs, targets)
