"""Driving kind: create (with the node start-up retry and its diagnosis), delete, logs, load."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ksi.checks.host import inotify_diagnosis
from ksi.errors import CommandFailed, Exit, KsiError, last_line

if TYPE_CHECKING:
    from ksi.provision.providers import Provider
    from ksi.runner import Runner

log = logging.getLogger("ksi.kind")

LOG_LINE_FAILURE = "could not find a log line that matches"
# kind checks for its network, then creates it, with no lock in between (kind v0.33.0
# providers/podman/network.go ensureNetwork): two creates at once as one user on one
# runtime race, and the loser fails although the network now exists (seen here: three
# test-bed nodes on one root podman).
NETWORK_RACE = re.compile(r'failed to ensure \w+ network: command "[^"]*network create '
                          r'[^"]*?(\S+)" failed')


# kind's top-level config errors (v0.33.0 pkg/internal/apis/config/encoding/load.go and
# validate.go; cmd/kind/create/cluster/createcluster.go returns load errors unwrapped and
# wraps Validate()'s in "failed to create cluster: ", several as "[a, b]").
CONFIG_ERRORS = re.compile(
    r"unable to decode config|could not determine kind / apiVersion|unknown kind \S+ for "
    r"apiVersion|unknown apiVersion|error reading (?:file|config from stdin)|is not a valid "
    r"cluster name|invalid (?:apiServerPort|ipFamily|pod subnet|service subnet|kubeProxyMode|"
    r"configuration for node)|must have at least one control-plane node")


RUNTIMES = ("podman", "nerdctl", "docker", "finch")


def kind_error(stderr: str) -> tuple[str, str]:
    """(kind's error, the failed command's own output) from kind's stderr.

    kind prints its warnings and progress first, then `ERROR: <err>`, then - when the error
    came from a command - `\nCommand Output: <output>`, then at -v >= 1 `\nStack Trace: …`
    (v0.33.0 cmd/kind/app/main.go logError). Only these two parts name the failure: warnings
    (e.g. podman < 4's "…Delegate=yes…") and kubeadm's log inside them do not. Without an
    ERROR line (kind killed), the error is the last line."""
    m = re.search(r"^(?:\x1b\[31m)?ERROR(?:\x1b\[0m)?: ", stderr, re.MULTILINE)
    if not m:
        return last_line(stderr), ""
    rest = stderr[m.end():]
    rest = re.split(r"\n(?:\x1b\[31m)?Stack Trace(?:\x1b\[0m)?: ", rest, maxsplit=1)[0]
    parts = re.split(r"\n(?:\x1b\[31m)?Command Output(?:\x1b\[0m)?: ", rest, maxsplit=1)
    err, output = parts[0], (parts[1] if len(parts) > 1 else "")
    return " ".join(ln.strip() for ln in err.splitlines() if ln.strip()), output.strip()


def kind_said(stderr: str) -> str:
    """kind's failure in one line: its ERROR line, the command it ran shortened to the
    program and subcommand, and the most telling line of that command's output."""
    err, output = kind_error(stderr)
    said = err.removeprefix("failed to create cluster: ")
    said = re.sub(r'command "(\S+ \S+)[^"]*" failed with error: ', r'"\1 …" failed: ', said)
    detail = last_line(output)
    return f"{said}: {detail}" if said and detail else said or detail


def classify(stderr: str) -> tuple[Exit, str, str]:
    """(exit code, cause, fix) for a failed 'kind create cluster' from kind's own error and
    the failed command's output, never from its warnings."""
    err, output = kind_error(stderr)
    # The output of the runtime's own commands (run, info, ps, network) names host-side
    # causes; that of 'exec … kubeadm' is kubeadm's --v=6 log from inside the node
    # (v0.33.0 pkg/cluster/internal/create/actions/kubeadminit/init.go), which does not.
    failed = re.search(r'command "(\S+) (\S+)', err)
    runtime_cmd = bool(failed) and failed[1].rsplit("/", 1)[-1] in RUNTIMES \
        and failed[2] != "exec"
    both = f"{err}\n{output}" if runtime_cmd else err
    if LOG_LINE_FAILURE in err:
        return (Exit.CLUSTER_NODE_START_FAILED,
                "the kind node container did not start systemd (kind found no 'Multi-User "
                f"System' log line); host: {inotify_diagnosis()}",
                "ask an admin to set sysctl fs.inotify.max_user_instances=512 and "
                "fs.inotify.max_user_watches=524288, or run fewer clusters on this node")
    if CONFIG_ERRORS.search(err):
        return (Exit.CONFIG_INVALID, f"kind rejected the cluster config: {kind_said(stderr)}",
                "check the kind_config fragment in your KSI config (see --dry-run)")
    if "address already in use" in both or "port is already allocated" in both:
        return (Exit.PORT_TAKEN, "a host port of the cluster was taken by another program "
                "while kind started the node", "run again (KSI picks other ports) or unset "
                "K8S_PORT if you set it")
    if "rootless containerd not running" in both or "annot connect" in both:
        return (Exit.RUNTIME_UNAVAILABLE, "the container runtime is not running for this user",
                "start it (rootless nerdctl: 'containerd-rootless-setuptool.sh install'); "
                "see 'ksi doctor'")
    if "requires cgroup v2" in err or 'requires setting systemd property "Delegate=yes"' in err:
        return (Exit.RUNTIME_UNAVAILABLE, "the rootless runtime lacks cgroup v2 delegation "
                "(cpu, memory, pids)", "ask an admin to enable cgroup v2 and Delegate=yes for "
                "user@.service; see 'ksi doctor'")
    said = kind_said(stderr)
    return (Exit.CLUSTER_CREATE_FAILED,
            "kind could not create the cluster" + (f": {said}" if said else ""),
            "read the cluster logs KSI exported (path above) and 'ksi doctor'")


class Kind:
    """The kind CLI for one provider; each cluster uses its own kubeconfig file."""

    def __init__(self, runner: Runner, provider: Provider, *, systemd_scope: bool = False,
                 binary: str = "kind") -> None:
        self.runner = runner
        self.provider = provider
        self.systemd_scope = systemd_scope
        self.binary = binary

    def argv(self, *args: str) -> list[str]:
        scope = ["systemd-run", "--user", "--scope", "--quiet", "-p", "Delegate=yes"] \
            if self.systemd_scope else []
        return [*scope, self.binary, *args]

    def env(self, kubeconfig: Path | None = None) -> dict[str, str]:
        env = self.provider.kind_env()
        if kubeconfig is not None:
            env["KUBECONFIG"] = str(kubeconfig)
        return env

    def create_argv(self, name: str, config: Path, kubeconfig: Path, image: str = "") -> list[str]:
        args = ["create", "cluster", "--name", name, "--config", str(config),
                "--kubeconfig", str(kubeconfig), "--retain"]
        if image:
            args += ["--image", image]
        return self.argv(*args)

    def create(self, name: str, config: Path, kubeconfig: Path, *, image: str = "",
               timeout: float = 600, retries: int = 2) -> int:
        """Create the cluster; retry kind's transient node start-up failure and its network
        race. Returns attempts."""
        attempts = retries + 1
        for attempt in range(1, attempts + 1):
            try:
                self.runner.run(self.create_argv(name, config, kubeconfig, image),
                                env=self.env(kubeconfig), timeout=timeout,
                                what="kind create cluster")
                return attempt
            except CommandFailed as exc:
                raced = NETWORK_RACE.search(exc.stderr)
                if raced and attempt < attempts and self.provider.network_exists(raced[1]):
                    log.warning("kind create: another kind created the %r network meanwhile "
                                "(attempt %d/%d); retrying", raced[1], attempt, attempts)
                    continue  # kind failed before it made any node: nothing to delete
                code, cause, fix = classify(exc.stderr)
                if code == Exit.CLUSTER_NODE_START_FAILED and attempt < attempts:
                    log.warning("kind create: node did not start (attempt %d/%d); %s; retrying",
                                attempt, attempts, inotify_diagnosis())
                    self.delete(name, kubeconfig)
                    time.sleep(min(2.0 * attempt, 10.0))
                    continue
                if code == Exit.CLUSTER_NODE_START_FAILED:
                    cause += f" after {attempts} attempts"
                raise KsiError(cause, fix, code=code, detail=exc.stderr) from exc
        raise AssertionError("unreachable")

    def delete(self, name: str, kubeconfig: Path | None, timeout: float = 180) -> None:
        self.runner.run(self.argv("delete", "cluster", "--name", name,
                                  *(["--kubeconfig", str(kubeconfig)] if kubeconfig else [])),
                        env=self.env(kubeconfig), timeout=timeout, what="kind delete cluster",
                        code=Exit.TEARDOWN_INCOMPLETE)

    def export_logs(self, name: str, directory: Path, timeout: float = 180) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.runner.run(self.argv("export", "logs", str(directory), "--name", name),
                        env=self.env(), timeout=timeout, what="kind export logs",
                        code=Exit.TEARDOWN_INCOMPLETE)

    def load_archive(self, name: str, archive: str, timeout: float = 900) -> None:
        self.runner.run(self.argv("load", "image-archive", archive, "--name", name),
                        env=self.env(), timeout=timeout, what=f"kind load image-archive {archive}",
                        code=Exit.IMAGE_FAILED, fix="check the archive; re-create it with "
                        "'ksi images save IMAGE'")

    def clusters(self) -> list[str]:
        res = self.runner.run(self.argv("get", "clusters"), env=self.env(), timeout=60,
                              what="kind get clusters", code=Exit.RUNTIME_UNAVAILABLE)
        return [ln.strip() for ln in res.stdout.splitlines() if ln.strip()]
