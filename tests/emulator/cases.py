"""The behaviours of the real tools that KSI depends on, as cases recorded from the real
kind, kubectl, podman and liqoctl (tests/emulator/record.py) and replayed against the
emulator (tests/test_emulator_recorded.py).

A case is one command. Its argv and files may use `{tmp}` (the run's scratch directory) and
`{cluster}`; the cases run in this order, sequentially, the `cluster` ones while one small
kind cluster exists. What is compared is declared per case (`Case.compare`): the exit code
always, then only the parts KSI reads:

  stdout="exact"|"empty"      the normalised stdout, all of it / nothing
  stdout_lines=[regex…]       the stdout lines matching any regex, in order
  stderr_lines=[regex…]       the same for stderr
  error_line=True             ksi.errors.last_line(stderr), normalised
  json_keys=[path…]           paths present in both JSON stdouts with the same JSON type; a
                              path is a tuple of keys, "*" = every item of a list
  json_values=[path…]         paths with equal (normalised) values

Normalisation (`normalise`), applied to the real and the emulated output alike:
  the scratch directory -> $TMP, the host name -> $HOST, `go1.x.y` -> go$GO,
  ISO-8601 times -> $TIME, 127.0.0.1:<port> / 0.0.0.0:<port> -> <addr>:$PORT,
  64-hex and 12-hex (with a letter) container ids -> $ID, durations `after 12s` / `in 3.2s` -> $DUR,
  kind's random salutation line -> $SALUTATION.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from typing import Any, Optional

CLUSTER = "ksi-rec"
NODE_IMAGE = "localhost/ksi-kind-node:v1.34.4"
LABEL = "io.x-k8s.kind.cluster"

FILES = {
    "strict.yaml": ("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nfoo: 1\nnetworking:\n"
                    "  apiServerPort: abc\n"),
    "subnet.yaml": ("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n"
                    "  podSubnet: 10.0.0.0/33\n"),
    # shaped like KSI's (src/ksi/plan/kindconfig.py), kept small
    "ok.yaml": ("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n"
                "  apiServerAddress: 127.0.0.1\nnodes:\n- role: control-plane\n"),
}
SUSPENDED_JOB = ("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: never\n  namespace: default\n"
                 "spec:\n  suspend: true\n  template:\n    spec:\n      restartPolicy: Never\n"
                 "      containers:\n      - name: c\n        image: localhost/ksi-busybox:e2e\n"
                 "        command: [\"true\"]\n")
UNKNOWN_KIND = "apiVersion: v1\nkind: Foo\nmetadata:\n  name: x\n"


@dataclass
class Case:
    name: str
    argv: list[str]
    cluster: bool = False           # needs the cluster (created by the case kind-create-ok)
    stdin: Optional[str] = None
    compare: dict[str, Any] = field(default_factory=dict)
    timeout: float = 120


KUBECONFIG = "{tmp}/kubeconfig"
KIND_CREATE = ["kind", "create", "cluster", "--name", CLUSTER, "--config", "{tmp}/ok.yaml",
               "--kubeconfig", KUBECONFIG, "--retain", "--image", NODE_IMAGE]
PS = ["podman", "ps", "-a", "--filter", f"label={LABEL}={CLUSTER}"]

CASES: list[Case] = [
    Case("kind-version", ["kind", "version"], compare={"stdout": "exact"}),
    Case("kind-get-clusters-none", ["kind", "get", "clusters"],
         compare={"stdout_lines": [f"^{CLUSTER}$", "^No kind"]}),
    Case("kind-create-strict-decoding",
         ["kind", "create", "cluster", "--name", CLUSTER, "--config", "{tmp}/strict.yaml",
          "--kubeconfig", KUBECONFIG],
         compare={"stdout": "empty", "stderr": "exact", "classify": "CONFIG_INVALID"}),
    Case("kind-create-invalid-pod-subnet",
         ["kind", "create", "cluster", "--name", CLUSTER, "--config", "{tmp}/subnet.yaml",
          "--kubeconfig", KUBECONFIG],
         compare={"stdout": "empty", "stderr": "exact", "error_line": True,
                  "classify": "CONFIG_INVALID"}),
    Case("kind-delete-missing", ["kind", "delete", "cluster", "--name", "ksi-rec-missing",
                                 "--kubeconfig", KUBECONFIG],
         compare={"stdout": "empty", "stderr": "exact"}),
    Case("kind-export-logs-missing", ["kind", "export", "logs", "{tmp}/nologs", "--name",
                                      "ksi-rec-missing"],
         compare={"stdout": "empty", "stderr": "exact"}),
    Case("kubectl-version-client", ["kubectl", "version", "--client", "-o", "json"],
         compare={"json_keys": [("clientVersion", "gitVersion"), ("clientVersion", "major"),
                                ("clientVersion", "minor"), ("kustomizeVersion",)],
                  "json_values": [("clientVersion", "gitVersion")]}),
    Case("podman-info-json", ["podman", "info", "--format", "json"],
         compare={"json_keys": [("host", "security", "rootless"), ("host", "cgroupVersion"),
                                ("host", "cgroupManager"), ("host", "cgroupControllers"),
                                ("version", "Version")],
                  "json_values": [("host", "security", "rootless"), ("host", "cgroupVersion"),
                                  ("host", "cgroupManager"), ("version", "Version")]}),
    Case("podman-ps-json-none", [*PS, "--format", "json"], compare={"stdout": "exact"}),
    # ---- with one cluster
    Case("kind-create-ok", KIND_CREATE, cluster=True, timeout=600,
         compare={"stdout": "empty",
                  "stderr_lines": ['^Creating cluster', '^Set kubectl context',
                                   r"^ ✓ (Ensuring|Preparing|Writing|Starting|Installing)"]}),
    Case("kind-get-clusters-one", ["kind", "get", "clusters"], cluster=True,
         compare={"stdout_lines": [f"^{CLUSTER}$"]}),
    Case("kind-create-exists", KIND_CREATE, cluster=True,
         compare={"stdout": "empty", "error_line": True, "classify": "CLUSTER_CREATE_FAILED"}),
    Case("podman-ps-labels", [*PS, "--format", '{{.Names}}\t{{index .Labels "' + LABEL + '"}}'],
         cluster=True, compare={"stdout": "exact"}),
    Case("podman-ps-json", [*PS, "--format", "json"], cluster=True,
         compare={"json_keys": [("*", "Names"), ("*", "Labels"), ("*", "State"), ("*", "Id"),
                                ("*", "Image"), ("*", "Ports")],
                  "json_values": [("*", "Names"), ("*", "State"), ("*", "Labels", LABEL),
                                  ("*", "Labels", "io.x-k8s.kind.role")]}),
    Case("kubectl-get-nodes-json", ["kubectl", "--kubeconfig", KUBECONFIG, "get", "nodes", "-l",
                                    "node-role.kubernetes.io/control-plane", "-o", "json"],
         cluster=True, compare={"json_keys": [("kind",), ("items",), ("items", "*", "metadata",
                                                                       "name")],
                                "json_values": [("kind",), ("items", "*", "metadata", "name")]}),
    Case("kubectl-get-missing", ["kubectl", "--kubeconfig", KUBECONFIG, "get", "job", "nope"],
         cluster=True, compare={"stdout": "empty", "error_line": True}),
    Case("kubectl-apply-unknown-kind", ["kubectl", "--kubeconfig", KUBECONFIG, "apply", "-f",
                                        "-"], cluster=True, stdin=UNKNOWN_KIND,
         compare={"stdout": "empty", "error_line": True}),
    Case("kubectl-apply-job", ["kubectl", "--kubeconfig", KUBECONFIG, "apply", "-f", "-"],
         cluster=True, stdin=SUSPENDED_JOB, compare={"stdout": "exact"}),
    Case("kubectl-wait-timeout", ["kubectl", "--kubeconfig", KUBECONFIG, "wait",
                                  "--for=condition=complete", "job/never", "--timeout=2s"],
         cluster=True, compare={"stdout": "empty", "error_line": True}),
    Case("kubectl-create-token-negative", ["kubectl", "--kubeconfig", KUBECONFIG, "-n",
                                           "kube-system", "create", "token", "default",
                                           "--duration=-1s"],
         cluster=True, compare={"stdout": "empty", "error_line": True}),
    Case("kubectl-create-token-subsecond", ["kubectl", "--kubeconfig", KUBECONFIG, "-n",
                                            "kube-system", "create", "token", "default",
                                            "--duration=1500ms"],
         cluster=True, compare={"stdout": "empty", "error_line": True}),
    Case("kubectl-create-token-short", ["kubectl", "--kubeconfig", KUBECONFIG, "-n",
                                        "kube-system", "create", "token", "default",
                                        "--duration=5m"],
         cluster=True, compare={"stdout": "empty", "error_line": True}),
    Case("liqoctl-version", ["liqoctl", "version", "--client"],
         compare={"stdout_lines": ["^Client version"]}),
    Case("liqoctl-info-no-liqo", ["liqoctl", "--kubeconfig", KUBECONFIG, "info", "-o", "json"],
         cluster=True, compare={"error_line": True}),
    Case("kind-export-logs", ["kind", "export", "logs", "{tmp}/logs", "--name", CLUSTER],
         cluster=True, timeout=300,
         compare={"stdout_lines": ["."], "stderr_lines": ["^Exporting logs"]}),
    Case("kind-delete", ["kind", "delete", "cluster", "--name", CLUSTER, "--kubeconfig",
                         KUBECONFIG], cluster=True, timeout=300,
         compare={"stdout": "empty", "stderr_lines": ["^Deleting cluster", "^Deleted nodes"]}),
]

SALUTATIONS = ("Have a nice day!", "Thanks for using kind!", "Not sure what to do next?",
               "Have a question, bug, or feature request?")  # kind create.go logSalutation

_SUBS = [
    (re.compile(r"\bgo1\.\d+(?:\.\d+)?\b"), "go$GO"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?"), "$TIME"),
    (re.compile(r"\b(127\.0\.0\.1|0\.0\.0\.0|localhost):\d{2,5}\b"), r"\1:$PORT"),
    (re.compile(r"\b[0-9a-f]{64}\b|\b(?=[0-9]*[a-f])[0-9a-f]{12}\b"), "$ID"),
    (re.compile(r"\b(after|in) \d+(?:\.\d+)?(?:ms|s|m)\b"), r"\1 $DUR"),
]


def normalise(text: str, tmp: str) -> str:
    """The run-time values of one output replaced by placeholders (see the module doc)."""
    if tmp:
        text = text.replace(tmp, "$TMP")
    host = socket.gethostname()
    if host:
        text = re.sub(rf"\b{re.escape(host)}\b", "$HOST", text)
    for rx, rep in _SUBS:
        text = rx.sub(rep, text)
    return "\n".join("$SALUTATION" if ln.strip().startswith(SALUTATIONS) else ln
                     for ln in text.split("\n"))


def expand(argv: list[str], tmp: str) -> list[str]:
    return [a.replace("{tmp}", tmp).replace("{cluster}", CLUSTER) for a in argv]


def by_name() -> dict[str, Case]:
    return {c.name: c for c in CASES}
