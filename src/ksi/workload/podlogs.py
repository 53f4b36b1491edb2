"""Live logs of the targets' pods: every container (init containers too, and the pods a Job
creates later), each line prefixed `[namespace/pod/container]`, into KSI's stdout.

Why not `kubectl logs -f --prefix --all-containers`: its prefix is `[pod/NAME/CONTAINER] `
without the namespace (k8s.io/kubectl pkg/cmd/logs/logs.go, addPrefixIfNeeded), it follows
only the containers running when it starts, and it ends at the first restart. KSI runs one
`kubectl logs` per container *instance* instead, started through the runner (tracked: the
runner's stop_all() at teardown ends any left), driven by the status polls of the run.

No line lost or doubled: a container's instances are numbered by `restartCount` (instance r
is the r-th restart). `shown` counts the instances whose output was printed in full, so each
instance is printed at most once, in order. At each poll, per container status:
- running with restartCount r: instance r lives, r-1 (if any) is `lastState`;
- terminated with restartCount r: instance r ended and nothing replaced it (yet);
- waiting with a `lastState.terminated` (CrashLoopBackOff): instance r ended, r+1 not begun.
An ended instance that was never followed is fetched whole: with `--previous` when it is the
`lastState` (the kubelet's validateContainerLogStatus, pkg/kubelet/kubelet_pods.go, serves
exactly that instance however soon the next one starts), without it when it is the
terminated current one. The live instance is followed with `kubectl logs -f`, which ends when
that instance ends; then it counts as shown. The kubelet starts the next instance only after
its crash-loop back-off (10 s, doubling), so the instance seen running is the one that the
follow request reaches. The kubelet keeps only the last ended instance: when two restarts fall
between polls, the older one's output is gone, and KSI says so on stderr (never silently).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Optional

from ksi.workload.podstate import container_statuses, meta

if TYPE_CHECKING:
    from ksi.access.kubectl import Kubectl

log = logging.getLogger("ksi.manifests")
MODES = ("none", "follow", "end")


class Printer:
    """Whole prefixed lines into one stream, one writer at a time."""

    def __init__(self, out: Optional[IO[str]] = None) -> None:
        self.out = out
        self.lock = threading.Lock()

    def write(self, label: str, text: str) -> int:
        lines = text.splitlines()
        out = self.out or sys.stdout
        with self.lock:
            for line in lines:
                out.write(f"[{label}] {line}\n")
            out.flush()
        return len(lines)


class Follower:
    """One `kubectl logs -f` of one container instance; a thread copies its lines."""

    def __init__(self, proc: subprocess.Popen, label: str, instance: int,
                 printer: Printer) -> None:
        self.proc, self.label, self.instance, self.printer = proc, label, instance, printer
        self.printed = 0
        self.error = ""
        self.thread = threading.Thread(target=self._copy, name=f"logs {label}", daemon=True)
        self.thread.start()

    def _copy(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            self.printed += self.printer.write(self.label, raw.decode("utf-8", "replace"))
        if self.proc.stderr is not None:
            self.error = self.proc.stderr.read().decode("utf-8", "replace").strip()
        self.proc.wait()

    def alive(self) -> bool:
        return self.thread.is_alive()

    @property
    def ok(self) -> bool:
        return not self.alive() and self.proc.returncode == 0


@dataclass
class Container:
    ns: str
    pod: str
    name: str
    shown: int = 0                      # instances printed in full
    follower: Optional[Follower] = None

    @property
    def label(self) -> str:
        return f"{self.ns}/{self.pod}/{self.name}"


def _instances(cs: dict[str, Any]) -> tuple[int, Optional[int]]:
    """(newest ended instance or -1, live instance or None) from one container status."""
    r = int(cs.get("restartCount") or 0)
    state, last = cs.get("state") or {}, cs.get("lastState") or {}
    if "running" in state:
        return r - 1, r
    if "terminated" in state or "terminated" in last:
        return r, None
    return -1, None


class PodLogs:
    """The log streams of a run's pods; `update(pods)` after each status poll."""

    def __init__(self, kubectl: Kubectl, mode: str = "follow",
                 printer: Optional[Printer] = None) -> None:
        self.kubectl = kubectl
        self.mode = mode
        self.printer = printer or Printer()
        self.containers: dict[tuple[str, str, str], Container] = {}

    def _container(self, pod: dict[str, Any], name: str) -> Container:
        m = meta(pod)
        key = (m.get("namespace", "default"), m.get("name", ""), name)
        if key not in self.containers:
            self.containers[key] = Container(*key)
        return self.containers[key]

    def _settle(self, c: Container) -> bool:
        """Account for a follower that ended; False while one still runs."""
        f = c.follower
        if f is None:
            return True
        if f.alive():
            return False
        c.follower = None
        self.kubectl.runner.forget(f.proc)
        if f.ok or f.printed:
            c.shown = max(c.shown, f.instance + 1)
        if not f.ok:
            log.warning("logs of %s: %s", c.label, f.error or f"exit {f.proc.returncode}")
        return True

    def _fetch(self, c: Container, previous: bool) -> None:
        args = ["logs", "-n", c.ns, c.pod, "-c", c.name] + (["--previous"] if previous else [])
        res = self.kubectl.run(*args, timeout=120, check=False, what=f"kubectl logs {c.label}")
        if res.returncode != 0:
            log.warning("logs of %s: %s", c.label,
                        ((res.stderr or res.stdout).strip().splitlines() or ["?"])[-1])
            return
        self.printer.write(c.label, res.stdout)

    def _follow(self, c: Container, instance: int) -> None:
        argv = self.kubectl.argv("logs", "-f", "-n", c.ns, c.pod, "-c", c.name)
        proc = self.kubectl.runner.spawn(argv, env={"KUBECONFIG": str(self.kubectl.kubeconfig)},
                                         piped=True, track=True)
        c.follower = Follower(proc, c.label, instance, self.printer)

    def _step(self, pod: dict[str, Any], cs: dict[str, Any], final: bool) -> None:
        c = self._container(pod, cs.get("name", ""))
        if not self._settle(c):
            return
        ended, live = _instances(cs)
        if c.shown <= ended:
            lost = ended - c.shown
            if lost:
                log.warning("logs of %s: the output of %d earlier run(s) is gone (the "
                            "kubelet keeps only the last one)", c.label, lost)
            # the newest ended instance is lastState unless it is the terminated current one;
            # a failed fetch (the pod was deleted) is reported once, not retried
            self._fetch(c, previous="terminated" not in (cs.get("state") or {}))
            c.shown = ended + 1
        if live is not None and c.shown == live:
            if self.mode == "follow" and not final:
                self._follow(c, live)
            elif final:  # its output so far
                self._fetch(c, previous=False)
                c.shown = live + 1

    def update(self, pods: list[dict[str, Any]], final: bool = False) -> None:
        if self.mode == "none" or (self.mode == "end" and not final):
            return
        for pod in pods:
            for cs in container_statuses(pod):
                self._step(pod, cs, final)

    def stop(self, wait: float = 2.0) -> None:
        """End every follower now (scancel, a failure, a service still running)."""
        for c in self.containers.values():
            f = c.follower
            if f is not None and f.alive():
                if f.proc.poll() is None:
                    f.proc.terminate()
                f.thread.join(wait)
                if f.alive():  # its pipe is held open by a child: kill the whole group
                    f.proc.kill()
                    f.thread.join(wait)
            self._settle(c)

    def finish(self, pods: list[dict[str, Any]], wait: float = 10.0) -> None:
        """At the end: the followers of ended containers run out by themselves (bounded),
        the rest are stopped, and what no follower showed is fetched once."""
        if self.mode == "none":
            return
        running = {(meta(p).get("namespace", "default"), meta(p).get("name", ""),
                    cs.get("name", ""))
                   for p in pods for cs in container_statuses(p)
                   if "running" in (cs.get("state") or {})}
        for key, c in self.containers.items():
            if c.follower is not None and key not in running:
                c.follower.thread.join(wait)
        self.stop()
        self.update(pods, final=True)
