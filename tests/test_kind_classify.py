"""ksi.provision.kind.classify: kind failures classified from kind's own error.

Each case is kind's stderr as kind v0.33.0 prints it: warnings and progress, then
`ERROR: <err>` and, for a failed command, `\\nCommand Output: <output>`
(cmd/kind/app/main.go logError). The messages are those of the cited kind source file
(sigs.k8s.io/kind@v0.33.0); the runtime's own lines are those of podman 4.3.1 / nerdctl 2.x.
The recorded real errors are classified in tests/test_emulator_recorded.py.
"""

from __future__ import annotations

import pytest

from ksi.errors import Exit
from ksi.provision.kind import classify, kind_error

PODMAN = "using podman due to KIND_EXPERIMENTAL_PROVIDER\nenabling experimental podman provider\n"
# providers/podman/provider.go info(): rootless podman < 4 (controllers unknown)
OLD_PODMAN_WARNING = ('Cgroup controller detection is not implemented for Podman. If you see '
                      'cgroup-related errors, you might need to set systemd property '
                      '"Delegate=yes", see https://kind.sigs.k8s.io/docs/user/rootless/\n')
CREATING = 'Creating cluster "c" ...\n ✓ Ensuring node image (localhost/ksi-kind-node:v1.34.4) 🖼\n'
RUN = ('command "podman run --name c-control-plane --hostname c-control-plane --label '
       'io.x-k8s.kind.role=control-plane --privileged --publish=127.0.0.1:41956:6443/tcp '
       'localhost/ksi-kind-node:v1.34.4" failed with error: exit status 126')
# kubeadm init --v=6 output: words that name host-side causes when the runtime says them
KUBEADM_LOG = ('I1202 18:20:01.000000     250 round_trippers.go:553] GET https://c-control-plane'
               ':6443/healthz  in 0 milliseconds\n[kubelet-check] The HTTP call failed with '
               'error: dial tcp [::1]:10248: connect: connection refused; cannot connect\n'
               'listen tcp 127.0.0.1:2379: bind: address already in use\n'
               'error execution phase wait-control-plane: couldn\'t initialize a Kubernetes '
               'cluster\n')

CASES = [
    # pkg/internal/apis/config/encoding/load.go yamlUnmarshalStrict (yaml.v3 KnownFields)
    ("strict-decoding", PODMAN + 'ERROR: failed to create cluster: unable to decode config: '
     'yaml: unmarshal errors:\n  line 3: field foo not found in type v1alpha4.Cluster\n',
     Exit.CONFIG_INVALID),
    # encoding/load.go Load: unknown apiVersion
    ("unknown-apiversion", PODMAN + "ERROR: failed to create cluster: unknown apiVersion: "
     "kind.x-k8s.io/v1alpha9\n", Exit.CONFIG_INVALID),
    # pkg/internal/apis/config/validate.go Validate: a top-level error, after kind's own
    # cgroup v1 warning (create.go validateProvider)
    ("invalid-pod-subnet", PODMAN + "cgroup v1 is deprecated in Kubernetes and will not be "
     "supported in a future kind release, please upgrade to cgroup v2\nERROR: failed to "
     'create cluster: invalid pod subnet failed to parse cidr value:"10.0.0.0/33" with '
     "error: invalid CIDR address: 10.0.0.0/33\n", Exit.CONFIG_INVALID),
    # validate.go: several errors aggregated (pkg/errors/aggregate_forked.go: "[a, b]")
    ("aggregate", PODMAN + 'ERROR: failed to create cluster: [invalid pod subnet failed to '
     'parse cidr value:"x" with error: invalid CIDR address: x, invalid service subnet '
     'failed to parse cidr value:"y" with error: invalid CIDR address: y]\n',
     Exit.CONFIG_INVALID),
    # validate.go: cluster name
    ("cluster-name", "ERROR: failed to create cluster: 'C_1' is not a valid cluster name, "
     "cluster names must match `^[a-z0-9.-]+$`\n", Exit.CONFIG_INVALID),
    # validate.go Node.Validate, wrapped "invalid configuration for node %d"
    ("node-config", "ERROR: failed to create cluster: invalid configuration for node 0: "
     "invalid portMapping: port mapping with same listen address, port and protocol already "
     "configured: 0.0.0.0:30080/TCP\n", Exit.CONFIG_INVALID),
    # pkg/cluster/internal/create/create.go validateProvider
    ("rootless-cgroup-v1", PODMAN + "ERROR: failed to create cluster: running kind with "
     "rootless provider requires cgroup v2, see https://kind.sigs.k8s.io/docs/user/rootless/\n",
     Exit.RUNTIME_UNAVAILABLE),
    ("rootless-delegate", "using nerdctl due to KIND_EXPERIMENTAL_PROVIDER\nERROR: failed to "
     'create cluster: running kind with rootless provider requires setting systemd property '
     '"Delegate=yes", see https://kind.sigs.k8s.io/docs/user/rootless/\n',
     Exit.RUNTIME_UNAVAILABLE),
    # providers/nerdctl/provider.go info: "failed to get nerdctl info" + nerdctl's FATA
    ("nerdctl-down", "using nerdctl due to KIND_EXPERIMENTAL_PROVIDER\nERROR: failed to create "
     "cluster: failed to get nerdctl info: command \"nerdctl info --format '{{json .}}'\" "
     "failed with error: exit status 1\n\nCommand Output: time=\"2026-12-02T18:00:00Z\" "
     'level=fatal msg="rootless containerd not running? (hint: use `containerd-rootless-'
     'setuptool.sh install` to start rootless containerd): stat /run/user/1000/containerd-'
     'rootless: no such file or directory"\n', Exit.RUNTIME_UNAVAILABLE),
    # providers/podman/provider.go ListNodes (create.go alreadyExists): podman remote down
    ("podman-down", PODMAN + 'ERROR: failed to create cluster: failed to list nodes: command '
     '"podman ps -a --filter label=io.x-k8s.kind.cluster=c --format {{.Names}}" failed with '
     "error: exit status 125\n\nCommand Output: Cannot connect to Podman. Please verify your "
     "connection to the Linux system using `podman system connection list`\n",
     Exit.RUNTIME_UNAVAILABLE),
    # providers/podman/provision.go createContainer: podman run's port error
    ("port-taken", PODMAN + OLD_PODMAN_WARNING + CREATING + " ✗ Preparing nodes 📦\nERROR: "
     f"failed to create cluster: {RUN}\n\nCommand Output: Error: rootlessport listen tcp "
     "127.0.0.1:41956: bind: address already in use\n", Exit.PORT_TAKEN),
    # providers/podman/provision.go createContainerWithWaitUntilSystemdReachesMultiUserSystem
    # + providers/common/cgroups.go WaitUntilLogRegexpMatches
    ("log-line", PODMAN + OLD_PODMAN_WARNING + CREATING + " ✗ Preparing nodes 📦\nERROR: failed "
     'to create cluster: could not find a log line that matches "Reached target .*Multi-User '
     'System.*|detected cgroup v1"\n', Exit.CLUSTER_NODE_START_FAILED),
    # create/actions/kubeadminit/init.go: kubeadm's --v=6 log is no host-side cause, and the
    # podman < 4 warning naming Delegate=yes is no cgroup failure
    ("kubeadm-init", PODMAN + OLD_PODMAN_WARNING + CREATING + " ✓ Preparing nodes 📦\n ✓ Writing "
     "configuration 📜\n ✗ Starting control-plane 🕹️\nERROR: failed to create cluster: failed "
     'to init node with kubeadm: command "podman exec --privileged c-control-plane kubeadm init '
     '--config=/kind/kubeadm.conf --skip-token-print --v=6" failed with error: exit status 1'
     "\n\nCommand Output: " + KUBEADM_LOG, Exit.CLUSTER_CREATE_FAILED),
    # create.go alreadyExists
    ("exists", PODMAN + 'ERROR: failed to create cluster: node(s) already exist for a cluster '
     'with the name "c"\n', Exit.CLUSTER_CREATE_FAILED),
    # providers/podman/provider.go Provision: "failed to ensure podman network"
    ("network", PODMAN + CREATING + "ERROR: failed to create cluster: failed to ensure podman "
     'network: command "podman network create -d=bridge --ipv6 --subnet fc00:f853:ccd:e793::/64'
     ' kind" failed with error: exit status 125\n\nCommand Output: Error: netavark: '
     "iptables: No chain/target/match by that name.\n", Exit.CLUSTER_CREATE_FAILED),
]


@pytest.mark.parametrize("stderr,code", [(c[1], c[2]) for c in CASES],
                         ids=[c[0] for c in CASES])
def test_classify_from_kinds_own_error(stderr: str, code: Exit) -> None:
    got, cause, fix = classify(stderr)
    assert got == code, cause
    assert cause and fix and "\n" not in cause


def test_warnings_are_not_the_error() -> None:
    """kind's warnings before ERROR and the Stack Trace after the output are not kind's
    error; the multi-line yaml error is one line."""
    stderr = (OLD_PODMAN_WARNING + "ERROR: failed to create cluster: unable to decode config: "
              "yaml: unmarshal errors:\n  line 3: field foo not found in type v1alpha4.Cluster"
              "\n\nStack Trace: \nsigs.k8s.io/kind/pkg/errors.Wrap\n")
    assert kind_error(stderr) == ("failed to create cluster: unable to decode config: yaml: "
                                  "unmarshal errors: line 3: field foo not found in type "
                                  "v1alpha4.Cluster", "")
    err, output = kind_error(CASES[-3][1])
    assert "Delegate" not in err and output.startswith("I1202") and "wait-control-plane" in output
    code, cause, _ = classify(CASES[-3][1])
    assert cause.endswith("exit status 1: error execution phase wait-control-plane: couldn't "
                          "initialize a Kubernetes cluster")
    # no ERROR line at all (kind killed): the last line
    assert classify("Creating cluster \"c\" ...\n")[0] == Exit.CLUSTER_CREATE_FAILED
