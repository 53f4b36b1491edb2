"""This node's part of the multi-node protocol (steps in ksi.federate.steps): join the
rendezvous directory and prove it is shared, place this node, learn at once when another node
fails (a signal to the main thread), tell the others when this one fails, and at the end
leave (the closer cleans up after dead nodes and removes the directory).

Every node creates its own kind cluster (in parallel) with an API server address the others
reach, disjoint subnets and Liqo's gateway NodePort mapped to a host UDP port, and installs
Liqo. The head (node 0) peers with every member as each becomes ready, waits until every
virtual node is Ready and every peering Healthy, and runs the workload once. Members keep
their clusters until the head writes `done`; then every node tears down. A failure anywhere
(a node's own error, or its heartbeats stopping) stops every node, each naming the node that
failed. The nodes talk only through files in SHARED_DIR/.ksi/<job>.<step>/ (rendezvous.py).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Optional

from ksi.errors import Exit, KsiError
from ksi.federate.liqo import Liqo, LiqoOptions
from ksi.federate.placement import and_list, place
from ksi.federate.rendezvous import (
    SHORT_POLL,
    Failure,
    JobDir,
    Watch,
    backoff,
    new_nonce,
    node_name,
    wait_for,
)
from ksi.runner import signal_group

if TYPE_CHECKING:
    from ksi.output import Console
    from ksi.plan.plan import Plan
    from ksi.run.outcome import Outcome
    from ksi.runner import Runner
    from ksi.signals import Guard

log = logging.getLogger("ksi.federate")
# the watcher thread -> the main thread: a real-time signal nobody sends to a job (SIGUSR1
# and SIGUSR2 belong to the workload: `sbatch --signal=USR1@60`)
ABORT_SIGNAL = signal.SIGRTMIN + 2


class Federation:
    """This node's part of the multi-node protocol."""

    def __init__(self, plan: Plan, console: Console, runner: Runner) -> None:
        self.plan = plan
        self.console = console
        self.runner = runner
        env = plan.env
        self.me = env.node_id
        self.n = env.num_nodes
        self.names = list(env.nodes)
        self.head = self.me == 0
        self.name = node_name(self.names, self.me) if self.names else env.hostname
        self.jobdir: Optional[JobDir] = None
        self.watch: Optional[Watch] = None
        self.guard: Optional[Guard] = None
        self.abort_error: Optional[KsiError] = None
        self.closed = False
        self.lan = ""
        self.reserved: list[str] = []
        self.liqo_options = LiqoOptions()
        self.nonce = new_nonce()
        self._old_handler: Any = None
        self._killer: Optional[threading.Timer] = None
        self._main = threading.main_thread().ident

    # ================================================================= before the cluster
    def prepare(self) -> str:
        """Join the rendezvous directory, prove it is shared, and decide this node's
        address, subnets and gateway port (self.plan becomes the placed plan)."""
        p, s, env = self.plan, self.plan.settings, self.plan.env
        self.liqo_options = LiqoOptions.from_settings(s)
        shared = p.shared_dir
        if shared is None and self.n == 1:  # federate=always on one node: nobody to meet
            shared = p.state_root
        if shared is None:
            raise KsiError(f"a {self.n}-node run needs SHARED_DIR, a directory on a filesystem "
                           "all nodes share, where the nodes meet",
                           "run 'ksi run WORKLOAD SHARED_DIR', or add --each to run the "
                           "workload on every node alone", code=Exit.SHARED_DIR_MISSING)
        self.jobdir = JobDir(shared, env.job_id, env.step_id,
                             env.environ.get("SLURM_RESTART_COUNT", ""))
        self.jobdir.create()
        self.jobdir.write(f"hello-{self.me}.json", {
            "node": self.me, "host": env.hostname, "pid": os.getpid(), "nonce": self.nonce,
            "cluster": p.cluster, "provider": p.provider, "state_dir": str(p.state_dir),
            "kubeconfig": str(p.kubeconfig), "systemd_scope": s.systemd_scope,
            "time": time.time()})
        self.watch = Watch(self.jobdir, self.me, self.n, self.names, s.heartbeat_interval,
                           s.heartbeat_timeout, on_failure=self._on_peer_failure)
        self.watch.start()
        Liqo(self.runner, p.kubeconfig).check_installed()
        self._check_shared(s.shared_check_timeout)
        self.lan, nets, self.plan = place(p, self.names, self.runner, self.liqo_options)
        p = self.plan
        role = "head" if self.head else "member"
        return (f"{role} {self.me}/{self.n} at {p.api_address} ({self.lan}); pods "
                f"{nets.pod}, services {nets.service}; {self.jobdir.path}")

    def _check_shared(self, timeout: float) -> None:
        """The head sees every node's hello and publishes the nonces it saw (the roster);
        a member sees the roster with its own nonce. Otherwise the directory is not shared."""
        jd = self.jobdir
        assert jd is not None
        where = f"{self.plan.shared_dir}/.ksi/"
        if self.head:
            hellos: dict[int, dict] = {}

            def all_here() -> bool:
                jd.listing()
                for i in range(self.n):
                    if i not in hellos:
                        msg = jd.read(f"hello-{i}.json")
                        if msg:
                            hellos[i] = msg
                return len(hellos) == self.n

            if not wait_for(all_here, timeout, self.check_abort):
                missing = [node_name(self.names, i) for i in range(self.n) if i not in hellos]
                raise KsiError(
                    f"SHARED_DIR is not shared between nodes: {and_list(missing)} did not appear "
                    f"in {where} within {timeout:.0f}s",
                    "pass a directory on a shared filesystem (NFS, Lustre, GPFS) that every "
                    "node of the job sees", code=Exit.RENDEZVOUS_FAILED)
            jd.write("roster.json", {"nonces": {str(i): h.get("nonce") for i, h in
                                                hellos.items()},
                                     "hosts": {str(i): h.get("host") for i, h in
                                               hellos.items()}})
            return
        head = node_name(self.names, 0)

        def roster() -> Optional[dict]:
            jd.listing()
            msg = jd.read("roster.json")
            if msg and (msg.get("nonces") or {}).get(str(self.me)) == self.nonce:
                return msg
            return None

        longer = timeout + min(10.0, timeout)  # the head's verdict comes first
        if not wait_for(roster, longer, self.check_abort):
            raise KsiError(
                f"SHARED_DIR is not shared between nodes: the head {head} did not see "
                f"{self.name} in {where} within {longer:.0f}s",
                "pass a directory on a shared filesystem (NFS, Lustre, GPFS) that every "
                "node of the job sees", code=Exit.RENDEZVOUS_FAILED)

    # ================================================================= abort plumbing
    def attach(self, guard: Guard) -> None:
        """From now on another node's failure interrupts this node's current step (a
        signal to the main thread)."""
        self.guard = guard
        self._old_handler = signal.signal(ABORT_SIGNAL, self._on_abort_signal)
        if self.abort_error is not None:
            self._signal_main()

    def _on_peer_failure(self, failure: Failure) -> None:
        """Watcher thread: another node failed or died."""
        if self.closed:
            return
        fix = f"see {failure.name}'s output above or in its report; this node deleted its " \
              "cluster"
        if failure.dead:
            fix = (f"{failure.name}'s cluster is deleted by a cleanup step on that node; if "
                   f"it reports a problem, run 'ksi gc' on {failure.name}")
        self.abort_error = KsiError(f"{failure.name} failed: {failure.cause}", fix,
                                    code=Exit.MEMBER_FAILED)
        self._signal_main()

    def _signal_main(self) -> None:
        if self.guard is not None and not self.closed and self._main is not None:
            try:
                signal.pthread_kill(self._main, ABORT_SIGNAL)
            except (OSError, ProcessLookupError):
                pass

    def _on_abort_signal(self, _signum: int, _frame: Any) -> None:
        err, g = self.abort_error, self.guard
        if err is None or g is None or self.closed or g.mode == "teardown":
            return
        if g.mode == "workload":
            if g.workload is not None and self._killer is None:
                log.info("%s: stopping the workload (SIGTERM, SIGKILL in %.0fs)", err.cause,
                         g.grace)
                signal_group(g.workload, signal.SIGTERM)
                self._killer = threading.Timer(g.grace, signal_group,
                                               (g.workload, signal.SIGKILL))
                self._killer.daemon = True
                self._killer.start()
            return
        raise err

    def check_abort(self) -> None:
        if self.abort_error is not None:
            raise self.abort_error

    def on_failure(self, outcome: Outcome, *, name_node: bool = True) -> None:
        """This node's run failed (before teardown): tell the other nodes at once; the
        cause names this node (name_node) once its cluster steps had begun."""
        err = outcome.error
        if err is None or err is self.abort_error:
            return
        self.publish_failure(err)
        if name_node:  # the same error, its cause naming this node
            outcome.error = err.restated(cause=f"{self.name}: {err.cause}")

    def publish_failure(self, err: KsiError) -> None:
        if self.jobdir is None or err is self.abort_error:
            return
        try:
            self.jobdir.write(f"failed-{self.me}.json", {
                "node": self.me, "host": self.plan.env.hostname, "cause": err.cause,
                "fix": err.fix, "code": int(err.code)})
        except OSError as exc:
            log.warning("could not tell the other nodes about the failure: %s", exc)

    # ================================================================= the end
    def close(self) -> None:
        """After teardown: say so, and (the closer) clean up after dead nodes and remove
        the rendezvous directory once every node has left."""
        if self.closed:
            return
        self.closed = True
        if self._killer is not None:
            self._killer.cancel()
        if self._old_handler is not None:
            signal.signal(ABORT_SIGNAL, self._old_handler)
            self._old_handler = None
        jd, watch = self.jobdir, self.watch
        if jd is None:
            return
        try:
            jd.remove(f"kubeconfig-{self.me}")
            jd.write_text(f"left-{self.me}", "")
            if watch is not None and self._is_closer(watch):
                self._finish_job(jd, watch)
        except OSError as exc:
            log.debug("closing the rendezvous directory: %s", exc)
        finally:
            if watch is not None:
                watch.stop()

    def _present(self, jd: JobDir) -> set[int]:
        names = jd.listing()
        return {i for i in range(self.n) if f"hello-{i}.json" in names}

    def _is_closer(self, watch: Watch) -> bool:
        """The lowest-numbered node still alive: the head unless it died."""
        watch.scan()
        here = self._present(watch.jobdir)
        return not [i for i in here if i < self.me and i not in watch.dead
                    and i not in watch.left]

    def _finish_job(self, jd: JobDir, watch: Watch) -> None:
        s = self.plan.settings
        deadline = time.monotonic() + s.heartbeat_timeout + 30
        reaped: set[int] = set()
        for delay in backoff(SHORT_POLL):
            watch.scan()
            here = self._present(jd) - {self.me}
            for i in sorted(watch.dead & here - reaped - watch.left):
                reaped.add(i)
                self._reap(jd, i)
            waiting = [i for i in here if i not in watch.left and i not in watch.dead]
            if not waiting or time.monotonic() > deadline:
                break
            time.sleep(delay)
        watch.stop()  # no heartbeat may land in the directory while it is removed
        jd.remove_all()

    def _reap(self, jd: JobDir, i: int) -> None:
        """Delete a dead node's cluster by a job step on that node."""
        env = self.plan.env
        hello = jd.read(f"hello-{i}.json") or {}
        host = str(hello.get("host") or node_name(self.names, i))
        if not env.is_slurm or not self.runner.which("srun"):
            self.console.warn(f"{host}'s KSI process died; its cluster {hello.get('cluster')} "
                              f"may be left there: run 'ksi gc' on {host}")
            return
        argv = ["srun", f"--jobid={env.job_id}", "--overlap", "--nodes=1", "--ntasks=1",
                f"--nodelist={host}", "--kill-on-bad-exit=0", "--quiet",
                sys.executable, "-m", "ksi.federate.reap", str(jd.file(f"hello-{i}.json"))]
        try:
            res = self.runner.run(argv, timeout=90, check=False, what=f"cleanup on {host}")
        except KsiError as exc:
            res = None
            why = exc.cause
        if res is not None and res.returncode == 0:
            self.console.info(f"deleted the cluster of the dead KSI process on {host}")
        else:
            why = (res.stderr.strip().splitlines() or ["?"])[-1] if res is not None else why
            self.console.warn(f"could not clean up after the dead KSI process on {host} "
                              f"({why}): run 'ksi gc' on {host}")
