"""Bad manifests are refused before anything is applied, with a one-line cause.

How: the API server's discovery document of each apiVersion the manifests use
(`kubectl get --raw /api/v1`, `/apis/GROUP/VERSION`: JSON, one request per group-version,
naming each served kind and whether it is namespaced), plus one `kubectl get namespaces
-o json`. Kinds and namespaces that the manifests themselves define (a Namespace, a
CustomResourceDefinition) count as present.

Why not the alternatives: `kubectl apply --dry-run=server` persists nothing, so a valid
file that creates a Namespace (or a CRD) and then an object in it is refused; `kubectl
api-resources` reads every group's discovery (more requests than needed) and prints a table.
What cannot be known before (admission, quota, a field's value) comes from `kubectl apply`:
its own error, in one line.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ksi.errors import Exit, KsiError
from ksi.workload.objects import namespace_of

if TYPE_CHECKING:
    from ksi.access.kubectl import Kubectl
    from ksi.workload.objects import Manifests


def api_line(text: str) -> str:
    """The API's error in one line: kubectl's `Error from server …`/`error: …` line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith(("Error from server", "error:", "Error:")):
            return ln
    return lines[-1] if lines else ""


def builtin_group(group: str) -> bool:
    """Kubernetes' own API groups (core, apps, batch, *.k8s.io): no CRD defines them."""
    return "." not in group or group.endswith(".k8s.io")


def _defined(m: Manifests) -> tuple[dict[tuple[str, str], bool], set[str]]:
    """(apiVersion, kind) -> namespaced, for the CRDs in the manifests; their Namespaces."""
    kinds: dict[tuple[str, str], bool] = {}
    namespaces: set[str] = set()
    for _p, d in m.docs:
        name = (d.get("metadata") or {}).get("name", "")
        if d["kind"] == "Namespace" and d["apiVersion"] == "v1":
            namespaces.add(name)
        elif d["kind"] == "CustomResourceDefinition":
            spec = d.get("spec") or {}
            kind = (spec.get("names") or {}).get("kind", "")
            for v in spec.get("versions") or []:
                kinds[(f"{spec.get('group')}/{v.get('name')}", kind)] = \
                    spec.get("scope") != "Cluster"
    return kinds, namespaces


def discovery(kubectl: Kubectl, api_version: str) -> dict[str, bool] | None:
    """Kind -> namespaced for one group-version; None when the cluster does not serve it."""
    path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    res = kubectl.run("get", "--raw", path, timeout=60, check=False,
                      what=f"kubectl get --raw {path}", code=Exit.MANIFEST_FAILED)
    if res.returncode != 0:
        line = api_line(res.stderr or res.stdout)
        if "NotFound" in line or "could not find the requested resource" in line:
            return None
        raise KsiError(f"the API server's discovery of {api_version} failed: {line}",
                       "check the cluster (kubectl get --raw /readyz from a 'ksi shell')",
                       code=Exit.MANIFEST_FAILED)
    try:
        doc = json.loads(res.stdout or "{}")
    except ValueError:
        doc = {}
    return {r.get("kind", ""): bool(r.get("namespaced")) for r in doc.get("resources") or []
            if "/" not in r.get("name", "")}


def check(kubectl: Kubectl, m: Manifests) -> None:
    """Raise KsiError(MANIFEST_FAILED) naming the first unknown kind, missing CRD or
    missing namespace, before anything is applied."""
    crd_kinds, own_namespaces = _defined(m)
    served: dict[str, dict[str, bool] | None] = {}
    needs_ns: list[tuple[str, str]] = []
    for path, d in m.docs:
        api, kind = d["apiVersion"], d["kind"]
        if (api, kind) in crd_kinds:
            namespaced = crd_kinds[(api, kind)]
        else:
            if api not in served:
                served[api] = discovery(kubectl, api)
            kinds = served[api]
            group = api.rsplit("/", 1)[0] if "/" in api else ""
            if kinds is None or kind not in kinds:
                if not builtin_group(group):
                    raise KsiError(
                        f"manifest {path}: kind {kind} ({api}) is not known to the cluster: "
                        "its CustomResourceDefinition is missing",
                        f"install the CRD first (put its manifest before {path}, or install "
                        "its operator in a workload script)", code=Exit.MANIFEST_FAILED)
                what = f"apiVersion {api}" if kinds is None else f"kind {kind} in {api}"
                raise KsiError(f"manifest {path}: the cluster does not serve {what}",
                               f"correct apiVersion/kind in {path} ('kubectl api-resources' "
                               "in a 'ksi shell' lists them)", code=Exit.MANIFEST_FAILED)
            namespaced = kinds[kind]
        ns = namespace_of(d)
        if namespaced and ns not in own_namespaces:
            needs_ns.append((str(path), ns))
    if not needs_ns:
        return
    res = kubectl.run("get", "namespaces", "-o", "json", timeout=60,
                      what="kubectl get namespaces", code=Exit.MANIFEST_FAILED)
    try:
        items: list[dict[str, Any]] = json.loads(res.stdout or "{}").get("items") or []
    except ValueError:
        items = []
    present = {(i.get("metadata") or {}).get("name") for i in items}
    for path, ns in needs_ns:
        if ns not in present:
            raise KsiError(f"manifest {path}: namespace {ns!r} does not exist",
                           f"add a Namespace manifest for {ns} (in {path} or a file before "
                           "it), or use an existing namespace", code=Exit.MANIFEST_FAILED)


def apply(kubectl: Kubectl, m: Manifests, log: Any) -> None:
    """`kubectl apply -f` each file in order; the API's own error in one line."""
    for p in m.paths:
        res = kubectl.run("apply", "-f", str(p), timeout=300, check=False,
                          what=f"kubectl apply -f {p}", code=Exit.MANIFEST_FAILED)
        if res.returncode != 0:
            raise KsiError(f"kubectl apply -f {p} failed: {api_line(res.stderr or res.stdout)}",
                           f"correct {p} (the API server's message)",
                           code=Exit.MANIFEST_FAILED)
        for line in res.stdout.splitlines():
            log.info("%s", line)
