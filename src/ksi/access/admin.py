"""The admin-user service account bound to cluster-admin, and a token for it that lasts the job."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ksi.errors import Exit
from ksi.runner import add_secret

if TYPE_CHECKING:
    from ksi.access.kubectl import Kubectl

NAMESPACE = "kube-system"
ACCOUNT = "admin-user"
MIN_TOKEN_SECONDS = 600  # the API server refuses shorter expirations (10 minutes)


def manifests() -> list[dict[str, Any]]:
    """ServiceAccount + ClusterRoleBinding, as data."""
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": ACCOUNT, "namespace": NAMESPACE}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": ACCOUNT},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "cluster-admin"},
         "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": NAMESPACE}]},
    ]


def token_seconds(time_left: float | None, default: int, margin: int) -> int:
    """Lifetime covering the job's remaining time (plus margin), or the default."""
    seconds = default if time_left is None else int(time_left) + margin
    return max(MIN_TOKEN_SECONDS, seconds)


def ensure_admin(kubectl: Kubectl) -> None:
    import yaml

    kubectl.run("apply", "-f", "-", input=yaml.safe_dump_all(manifests()),
                what="creating service account kube-system/admin-user",
                fix="check the cluster's API server (see the exported logs)",
                code=Exit.ACCESS_FAILED)


def create_token(kubectl: Kubectl, seconds: int) -> str:
    res = kubectl.run("-n", NAMESPACE, "create", "token", ACCOUNT, f"--duration={seconds}s",
                      what="creating the admin-user token",
                      fix="check the cluster's API server (see the exported logs)",
                      code=Exit.TOKEN_FAILED)
    token = res.stdout.strip()
    if not token:
        from ksi.errors import KsiError

        raise KsiError("kubectl create token printed no token", "report this",
                       code=Exit.TOKEN_FAILED)
    add_secret(token)
    return token
