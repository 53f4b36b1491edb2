"""Live logs of the targets' pods: every container (init containers too, and the pods a Job
creates later), each line prefixed `[namespace/pod/container]`, into KSI's stdout.

Why not `kubectl logs -f --prefix --all-containers`: its prefix is `[pod/NAME/CONTAINER] `
without the namespace (k8s.io/kubectl pkg/cmd/logs/logs.go, addPrefixIfNeeded), it follows
only the containers running when it starts, and it ends at the first restart. KSI runs one
`kubectl logs` per container *instance* instead, started through the runner (tracked: the
runner's stop_all() at teardown ends any left), driven by the status polls of the run.

No line lost, doubled or put under the wrong run. A container instance is the pod (uid) and
its `restartCount` r: instance r is the r-th restart (the kubelet's containerID changes
with it). `shown` counts the instances whose output was printed in full or said to be gone.
At each poll, per container status:
- running with restartCount r: instance r lives, r-1 (if any) is `lastState`;
- terminated with restartCount r: instance r ended and nothing replaced it (yet);
- waiting with a `lastState.terminated` (CrashLoopBackOff): instance r ended, r+1 not begun.
The kubelet answers a log request from the status *at the time the request reaches it*
(validateContainerLogStatus, pkg/kubelet/kubelet_pods.go): without `--previous` the newest
instance (running, terminated, or `lastState` while in back-off), with it `lastState`. The
status KSI acted on is older than that, so a restart in between would make a request serve
the next instance. Hence the proof rule: what a request for instance i returned is printed
only once a status read that *began after* the request had answered still shows the
restartCount the request was made at (restartCount only grows, so the kubelet served the
instance KSI asked for). A follower that has ended before such a read, whose instance the
read shows replaced by a running i+1, served i as well (its instance had ended). A follower's
lines wait for that proof (at most one poll), then stream straight through. What cannot be
proven is dropped and fetched again while the kubelet still keeps it: `lastState` with
`--previous`, and a terminated current instance. Older instances are gone, so when restarts
outran the polls (Kubernetes restarts a crashed container at once the first time, then after
10 s, doubling) their output is lost, and KSI says so on stderr (never silently).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Callable, Optional

from ksi.errors import KsiError
from ksi.workload.podstate import container_statuses, meta

if TYPE_CHECKING:
    from ksi.access.kubectl import Kubectl

log = logging.getLogger("ksi.manifests")
MODES = ("none", "follow", "end")
UNRETRIEVABLE = "unable to retrieve container logs for "  # the kubelet's in-band error


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
    """One `kubectl logs -f` of one container instance; a thread copies its lines, held
    back until `prove()` says they are that instance's, then straight through."""

    def __init__(self, proc: subprocess.Popen, label: str, instance: int,
                 printer: Printer) -> None:
        self.proc, self.label, self.instance, self.printer = proc, label, instance, printer
        self.printed = 0
        self.error = ""
        self.proven = False
        self.held: list[str] = []
        self.answered = False          # a line came, or the stream ended
        self.answered_at_mark = False  # ... before the status read now being acted on
        self.ended_at_mark = False
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._copy, name=f"logs {label}", daemon=True)
        self.thread.start()

    def _copy(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            text = raw.decode("utf-8", "replace")
            with self.lock:
                self.answered = True
                if self.proven:
                    self.printed += self.printer.write(self.label, text)
                else:
                    self.held.append(text)
        if self.proc.stderr is not None:
            self.error = self.proc.stderr.read().decode("utf-8", "replace").strip()
        self.proc.wait()
        with self.lock:
            self.answered = True

    def mark(self) -> None:
        """A status read begins now."""
        with self.lock:
            self.answered_at_mark = self.answered
            self.ended_at_mark = not self.thread.is_alive()

    def prove(self) -> None:
        with self.lock:
            self.proven = True
            self.printed += self.printer.write(self.label, "".join(self.held))
            self.held = []

    def alive(self) -> bool:
        return self.thread.is_alive()

    @property
    def ok(self) -> bool:
        return not self.alive() and self.proc.returncode == 0


@dataclass
class Fetched:
    """A `kubectl logs [--previous]` answer for instance `instance`, made at restartCount
    `at`, printed once a later status read shows `at` still."""
    instance: int
    at: int
    text: str
    marked: bool = False


@dataclass
class Container:
    ns: str
    pod: str
    name: str
    uid: str = ""
    shown: int = 0                      # instances printed in full (or said to be gone)
    follower: Optional[Follower] = None
    fetched: Optional[Fetched] = None
    warned: set[str] = field(default_factory=set)

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


def _kept(cs: dict[str, Any]) -> list[tuple[int, bool]]:
    """The ended instances the kubelet still serves, oldest first, each with whether it
    takes `--previous`: lastState, and the current one when it is terminated (in back-off
    lastState *is* the current restartCount's instance)."""
    r = int(cs.get("restartCount") or 0)
    state, last = cs.get("state") or {}, cs.get("lastState") or {}
    out = []
    if "terminated" in last:
        out.append((r - 1 if "running" in state or "terminated" in state else r, True))
    if "terminated" in state:
        out.append((r, False))
    return out


class PodLogs:
    """The log streams of a run's pods: `mark()` before each status read, `update(pods)`
    after it."""

    def __init__(self, kubectl: Kubectl, mode: str = "follow",
                 printer: Optional[Printer] = None) -> None:
        self.kubectl = kubectl
        self.mode = mode
        self.printer = printer or Printer()
        self.containers: dict[tuple[str, str, str], Container] = {}

    def _container(self, pod: dict[str, Any], name: str) -> Container:
        m = meta(pod)
        key = (m.get("namespace", "default"), m.get("name", ""), name)
        c = self.containers.get(key)
        if c is None or c.uid != m.get("uid", ""):  # new, or a new pod of the same name
            if c is not None:
                self._drop(c)
            c = self.containers[key] = Container(*key, uid=m.get("uid", ""))
        return c

    def mark(self) -> None:
        """A status read begins: what has answered by now can be proven by it."""
        for c in self.containers.values():
            if c.follower is not None:
                c.follower.mark()
            if c.fetched is not None:
                c.fetched.marked = True

    def _drop(self, c: Container) -> None:
        """End c's follower (its held lines unprinted)."""
        f, c.follower = c.follower, None
        if f is None:
            return
        if f.proc.poll() is None:
            f.proc.terminate()
        f.thread.join(2.0)
        if f.alive():
            f.proc.kill()
        self.kubectl.runner.forget(f.proc)

    def _settle(self, c: Container, r: int, running: bool) -> bool:
        """Prove, keep or drop c's follower against restartCount r; False while it runs or
        waits for its proof."""
        f = c.follower
        if f is None:
            return True
        if not f.proven and f.answered_at_mark:
            if r == f.instance or (f.ended_at_mark and running and r == f.instance + 1):
                f.prove()
            elif r > f.instance:  # a restart raced the request: which run it got is unknown
                log.debug("logs of %s: run %d restarted before its stream began; fetched "
                          "again", c.label, f.instance)
                self._drop(c)
                return True
        if f.alive() or not f.proven:
            return False
        c.follower = None
        self.kubectl.runner.forget(f.proc)
        if f.ok or f.printed:
            c.shown = max(c.shown, f.instance + 1)
        if not f.ok:
            log.warning("logs of %s: %s", c.label, f.error or f"exit {f.proc.returncode}")
        return True

    def _fetch(self, c: Container, instance: int, at: int, previous: bool) -> None:
        args = ["logs", "-n", c.ns, c.pod, "-c", c.name] + (["--previous"] if previous else [])
        res = self.kubectl.run(*args, timeout=120, check=False, what=f"kubectl logs {c.label}")
        # the kubelet removes an older ended container once a newer one ended too
        # (cleanUpContainersInPod) and says so in the stream itself, exit 0
        gone = res.returncode == 0 and res.stdout.startswith(UNRETRIEVABLE) \
            and len(res.stdout.splitlines()) == 1
        if res.returncode != 0 or gone:  # e.g. the pod was deleted: said once, not retried
            log.warning("logs of %s: run %d: %s", c.label, instance,
                        ((res.stderr or res.stdout).strip().splitlines() or ["?"])[-1])
            c.shown = instance + 1
            return
        c.fetched = Fetched(instance, at, res.stdout)

    def _step(self, pod: dict[str, Any], cs: dict[str, Any], final: bool) -> None:
        c = self._container(pod, cs.get("name", ""))
        r = int(cs.get("restartCount") or 0)
        state = cs.get("state") or {}
        if not self._settle(c, r, "running" in state):
            return
        got = c.fetched
        if got is not None:
            if not got.marked:
                return
            c.fetched = None
            if r == got.at:
                self.printer.write(c.label, got.text)
                c.shown = got.instance + 1
        ended, live = _instances(cs)
        if c.shown <= ended:
            kept = [(i, prev) for i, prev in _kept(cs) if i >= c.shown]
            first = kept[0][0] if kept else ended + 1
            if first > c.shown:
                log.warning("logs of %s: the output of %d earlier run(s) is gone (the "
                            "kubelet keeps only the last ones)", c.label, first - c.shown)
                c.shown = first
            if kept:
                self._fetch(c, first, r, previous=kept[0][1])
                return
        if live is not None and c.shown == live:
            if self.mode == "follow" and not final:
                self._follow(c, live)
            elif final:  # its output so far
                self._fetch(c, live, r, previous=False)

    def _follow(self, c: Container, instance: int) -> None:
        argv = self.kubectl.argv("logs", "-f", "-n", c.ns, c.pod, "-c", c.name)
        proc = self.kubectl.runner.spawn(argv, env={"KUBECONFIG": str(self.kubectl.kubeconfig)},
                                         piped=True, track=True)
        c.follower = Follower(proc, c.label, instance, self.printer)

    def update(self, pods: list[dict[str, Any]], final: bool = False) -> None:
        if self.mode == "none" or (self.mode == "end" and not final):
            return
        for pod in pods:
            for cs in container_statuses(pod):
                self._step(pod, cs, final)

    def stop(self, wait: float = 2.0) -> None:
        """End every follower now (scancel, a failure, a service still running); what
        they hold unproven is printed (most likely theirs; a restart in that instant
        could not be told apart)."""
        for c in self.containers.values():
            f = c.follower
            if f is None:
                continue
            if f.alive():
                if f.proc.poll() is None:
                    f.proc.terminate()
                f.thread.join(wait)
                if f.alive():  # its pipe is held open by a child: kill the whole group
                    f.proc.kill()
                    f.thread.join(wait)
            if not f.proven:
                f.prove()
            c.follower = None
            self.kubectl.runner.forget(f.proc)
            if f.printed:
                c.shown = max(c.shown, f.instance + 1)

    def finish(self, pods: list[dict[str, Any]], wait: float = 10.0,
               look: Optional[Callable[[], list[dict[str, Any]]]] = None) -> None:
        """At the end: the followers of ended containers run out by themselves (bounded)
        and are proven by one more status read (`look`), the rest are stopped, what no
        follower showed is fetched once and proven by another read."""
        if self.mode == "none":
            return
        running = {(meta(p).get("namespace", "default"), meta(p).get("name", ""),
                    cs.get("name", ""))
                   for p in pods for cs in container_statuses(p)
                   if "running" in (cs.get("state") or {})}
        for key, c in self.containers.items():
            if c.follower is not None and key not in running:
                c.follower.thread.join(wait)
        pods = self._look(look, pods)
        self.update(pods, final=True)  # proves the followers that ended by themselves
        self.stop()
        for _ in range(3):  # fetch what no follower showed; prove it by the next read
            self.update(pods, final=True)
            if all(c.fetched is None for c in self.containers.values()):
                return
            pods = self._look(look, pods)
        for c in self.containers.values():  # unprovable (no status read): printed, said so
            if c.fetched is not None:
                log.warning("logs of %s: printed without a status read to confirm the "
                            "run they belong to", c.label)
                self.printer.write(c.label, c.fetched.text)
                c.fetched = None

    def _look(self, look: Optional[Callable[[], list[dict[str, Any]]]],
              pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A fresh status read (`pods` as it when no `look` is given)."""
        if look is None:
            self.mark()
            return pods
        try:
            return look()  # marks before it reads
        except KsiError as exc:
            log.warning("logs: the pods' status could not be read: %s", exc)
            return pods
