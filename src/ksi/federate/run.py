"""Multi-node runs: one logical cluster across the job's nodes.

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
import pathlib
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Optional

from ksi.errors import Exit, Interrupted, KsiError
from ksi.federate import address, subnets
from ksi.federate.liqo import (
    REMOTE_ID_LABEL,
    VIRTUAL_NODE_LABEL,
    Liqo,
    LiqoOptions,
    unhealthy,
)
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
    from ksi.cluster import NodeCluster
    from ksi.lifecycle import Outcome, RunOptions
    from ksi.output import Console
    from ksi.plan.plan import Plan
    from ksi.runner import Runner
    from ksi.signals import Guard

log = logging.getLogger("ksi.federate")
DONE_POLL = 0.5  # a member's wait for the head's `done` (2 directory reads a second)
# the watcher thread -> the main thread: a real-time signal nobody sends to a job (SIGUSR1
# and SIGUSR2 belong to the workload: `sbatch --signal=USR1@60`)
ABORT_SIGNAL = signal.SIGRTMIN + 2


def run_federated(plan: Plan, opts: RunOptions, console: Console, runner: Runner,
                  started: float) -> int:
    from ksi.lifecycle import Outcome, finish, run_node

    env = plan.env
    if env.local_id != 0:
        console.info(f"multi-node run: only the first task of each node takes part; task "
                     f"{env.proc_id} (local {env.local_id}) on {env.hostname} has nothing to do")
        return 0
    fed = Federation(plan, opts, console, runner)
    try:
        from ksi.signals import Guard

        with Guard(grace=plan.settings.workload_grace, relay_notices=not env.is_slurm), \
                console.phase("rendezvous") as ph:
            ph["detail"] = fed.prepare()
    except (KsiError, Interrupted, KeyboardInterrupt) as exc:
        if isinstance(exc, KsiError):
            err = exc
        else:
            signum = exc.signum if isinstance(exc, Interrupted) else 2
            err = KsiError(f"interrupted by {signal.Signals(signum).name} while the nodes met",
                           "nothing to clean up", code=Exit.RENDEZVOUS_FAILED)
            err.code = 128 + signum  # type: ignore[assignment]
        fed.publish_failure(err)
        fed.close()
        return finish(console, runner, plan, Outcome(code=err.code, error=err), started)
    try:
        code = run_node(plan, opts, console, runner, started, body=fed.body,
                        on_guard=fed.attach, on_failure=fed.on_failure,
                        after_provision=fed.start_liqo)
    finally:
        fed.close()
    return code


class Federation:
    """This node's part of the multi-node protocol."""

    def __init__(self, plan: Plan, opts: RunOptions, console: Console, runner: Runner) -> None:
        self.plan = plan
        self.opts = opts
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
        self._liqo_thread: Optional[threading.Thread] = None
        self._liqo_error: Optional[BaseException] = None
        self.nonce = new_nonce()
        self._old_handler: Any = None
        self._killer: Optional[threading.Timer] = None
        self._main = threading.main_thread().ident

    # ================================================================= before the cluster
    def prepare(self) -> str:
        """Join the rendezvous directory, prove it is shared, and decide this node's
        address, subnets and gateway port (set on the plan for NodeCluster)."""
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
        self.lan, nets = _place(p, self.names, self.runner, self.liqo_options)
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

            if not wait_for(all_here, timeout, self._check_abort):
                missing = [node_name(self.names, i) for i in range(self.n) if i not in hellos]
                raise KsiError(
                    f"SHARED_DIR is not shared between nodes: {_and(missing)} did not appear "
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
        if not wait_for(roster, longer, self._check_abort):
            raise KsiError(
                f"SHARED_DIR is not shared between nodes: the head {head} did not see "
                f"{self.name} in {where} within {longer:.0f}s",
                "pass a directory on a shared filesystem (NFS, Lustre, GPFS) that every "
                "node of the job sees", code=Exit.RENDEZVOUS_FAILED)

    # ================================================================= abort plumbing
    def attach(self, guard: Guard) -> None:
        """run_node installed its guard: from now on another node's failure interrupts
        this node's current step (a signal to the main thread)."""
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

    def _check_abort(self) -> None:
        if self.abort_error is not None:
            raise self.abort_error

    def on_failure(self, outcome: Outcome) -> None:
        """run_node failed (before teardown): tell the other nodes at once."""
        err = outcome.error
        if err is None or err is self.abort_error:
            return
        self.publish_failure(err)
        err.cause = f"{self.name}: {err.cause}"

    def publish_failure(self, err: KsiError) -> None:
        if self.jobdir is None or err is self.abort_error:
            return
        try:
            self.jobdir.write(f"failed-{self.me}.json", {
                "node": self.me, "host": self.plan.env.hostname, "cause": err.cause,
                "fix": err.fix, "code": int(err.code)})
        except OSError as exc:
            log.warning("could not tell the other nodes about the failure: %s", exc)

    # ================================================================= with the cluster
    def start_liqo(self, cluster: NodeCluster) -> None:
        """Right after kind created the cluster: install Liqo in a helper thread, while the
        main thread waits for the nodes and makes the admin token (liqoctl needs only the
        API server; its install waits for its own pods). body() joins it. If the run ends
        early, run_node's teardown stops the thread's command."""
        self._liqo_thread = threading.Thread(target=self._install_liqo, args=(cluster,),
                                             daemon=True, name="ksi-liqo-install")
        self._liqo_thread.start()

    def _install_liqo(self, cluster: NodeCluster) -> None:
        try:
            self._liqo_phase(cluster)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread by body()
            self._liqo_error = exc

    def _liqo_phase(self, cluster: NodeCluster) -> None:
        p = self.plan
        liqo = Liqo(self.runner, p.kubeconfig, options=self.liqo_options)
        with self.console.phase("liqo") as ph:
            lan = [] if self.lan.startswith("127.") else [self.lan]
            self.reserved = _unique([*lan, *address.runtime_network(
                cluster.provider.binary, self.runner)])
            subnets.check_disjoint([("pod subnet", p.pod_subnet),
                                    ("service subnet", p.service_subnet)],
                                   [("a reserved subnet", r) for r in self.reserved])
            api_url = f"https://{p.api_address}:{cluster.api_port}"
            # Liqo's images from the archive dir, if any (those of the version installed)
            if p.settings.image_archive_dir:
                cluster.rt.preload_liqo(p.cluster, self.liqo_options.version
                                        or liqo.client_version(),
                                        self.liqo_options.components())
            liqo.install(p.cluster, api_url, self.reserved, p.env.hostname)
            ph["detail"] = f"cluster id {p.cluster}, API {api_url}" + (
                "" if self.liqo_options.networking else ", networking module off")

    def _join_liqo(self, cluster: NodeCluster) -> None:
        """Wait for the install thread (another node's failure still interrupts)."""
        if self._liqo_thread is None:  # no after_provision hook ran: install here
            self._liqo_phase(cluster)
            return
        while self._liqo_thread.is_alive():
            self._check_abort()
            self._liqo_thread.join(0.1)
        if self._liqo_error is not None:
            raise self._liqo_error

    def body(self, cluster: NodeCluster, guard: Guard) -> int:
        """After run_node made this node's cluster Ready and accessible."""
        p, jd = self.plan, self.jobdir
        assert jd is not None
        self._check_abort()
        self._join_liqo(cluster)
        liqo = Liqo(self.runner, p.kubeconfig, options=self.liqo_options)
        ready = {"node": self.me, "host": p.env.hostname, "address": p.api_address,
                 "api_port": cluster.api_port, "gateway_host_port": cluster.gateway_host_port,
                 "gateway_nodeport": p.gateway_nodeport, "cluster_id": p.cluster,
                 "kubeconfig": f"kubeconfig-{self.me}", "pid": os.getpid()}
        if not self.head:
            jd.copy_private(p.kubeconfig, f"kubeconfig-{self.me}")
            jd.write(f"ready-{self.me}.json", ready)
            with self.console.phase("serve") as ph:
                done = self._wait_done()
                ph["detail"] = (f"the workload on {node_name(self.names, 0)} ended with exit "
                                f"{done.get('exit')}")
            return 0
        jd.write(f"ready-{self.me}.json", dict(ready, kubeconfig=""))
        with self.console.phase("peer") as ph:
            peers = self._peer_all(cluster, liqo)
            ph["detail"] = (f"{len(peers)} virtual node(s) Ready and Healthy (concurrency "
                            f"{max(1, p.settings.peer_concurrency)})")
        jd.write("peered.json", {"members": {str(m): r["cluster_id"] for m, r in peers.items()}})
        cluster.extra_variables.update({
            "KSI_NODE_COUNT": str(self.n),
            "KSI_VIRTUAL_NODES": ",".join(r["cluster_id"] for _, r in sorted(peers.items())),
        })
        from ksi.lifecycle import _workload_body

        code = _workload_body(self.opts)(cluster, guard)
        self._check_abort()  # a member died while the workload ran: that is the outcome
        jd.write("done.json", {"exit": code})
        return code

    def _wait_done(self) -> dict:
        """Member: wait (as long as the workload runs) for the head's done. Polled every
        0.5 s at most: the job ends when the last member has torn down."""
        jd = self.jobdir
        assert jd is not None
        for delay in backoff(DONE_POLL):
            self._check_abort()
            jd.listing()
            done = jd.read("done.json")
            if done is not None:
                if self.watch is not None:
                    self.watch.ignore.add(0)  # the head ends now: that is no failure
                return done
            time.sleep(delay)
        return {}  # pragma: no cover

    def _peer_all(self, cluster: NodeCluster, liqo: Liqo) -> dict[int, dict]:
        """Head: peer with each member as soon as it is ready (at most peer_concurrency
        `liqoctl peer` at once), then wait until all are peered (_wait_peered)."""
        s, jd = self.plan.settings, self.jobdir
        assert jd is not None
        members = [i for i in range(self.n) if i != self.me]
        pending = set(members)
        ready: dict[int, dict] = {}
        results: dict[int, Optional[BaseException]] = {}
        lock = threading.Lock()
        gate = threading.BoundedSemaphore(max(1, int(s.peer_concurrency)))

        def peer_one(m: int, msg: dict) -> None:
            name = node_name(self.names, m, msg)
            try:
                with gate:
                    if self.abort_error is not None or self.closed:
                        raise self.abort_error or KsiError("stopped", code=Exit.PEER_FAILED)
                    liqo.peer(jd.file(f"kubeconfig-{m}"), _int(msg.get("gateway_nodeport")),
                              str(msg["address"]), _int(msg.get("gateway_host_port")),
                              what=f"liqoctl peer with {name}")
                err: Optional[BaseException] = None
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                err = exc
            with lock:
                results[m] = err

        deadline = time.monotonic() + s.rendezvous_timeout
        delays = backoff(SHORT_POLL)
        while True:
            self._check_abort()
            jd.listing()
            for m in sorted(pending):
                msg = jd.read(f"ready-{m}.json")
                if msg:
                    pending.discard(m)
                    ready[m] = msg
                    threading.Thread(target=peer_one, args=(m, msg), daemon=True,
                                     name=f"ksi-peer-{m}").start()
                    delays = backoff(SHORT_POLL)
            with lock:
                failed = [(m, e) for m, e in results.items() if e is not None]
                finished = len(results)
            if failed:
                m, exc = failed[0]
                if isinstance(exc, KsiError):
                    raise exc
                raise KsiError(f"peering with {node_name(self.names, m)} failed: {exc!r}",
                               "report this", code=Exit.PEER_FAILED)
            if not pending and finished == len(members):
                break
            if pending and time.monotonic() > deadline:
                raise KsiError(
                    f"{_and([node_name(self.names, m) for m in sorted(pending)])} did not get "
                    f"ready within {s.rendezvous_timeout:.0f}s (rendezvous_timeout)",
                    "see those nodes' output; raise rendezvous_timeout if their clusters are "
                    "just slow to start", code=Exit.RENDEZVOUS_FAILED)
            time.sleep(next(delays))
        self._wait_peered(cluster, liqo, ready)
        return ready

    def _wait_peered(self, cluster: NodeCluster, liqo: Liqo, ready: dict[int, dict]) -> None:
        """Head: wait until every member's virtual node is Ready, then every peering
        Healthy: one `kubectl get nodes` (and then one `liqoctl info`) per round for all
        members, polled at most every 0.25 s (a virtual node registers 1-5 s after
        `liqoctl peer`)."""
        s = self.plan.settings
        names = {r["cluster_id"]: node_name(self.names, m, r) for m, r in ready.items()}
        ports = {r["cluster_id"]: r.get("gateway_host_port") for r in ready.values()}
        missing: set[str] = set(names)
        bad: dict[str, str] = {}
        last = ""

        def peered() -> bool:
            nonlocal missing, bad, last
            up, last = cluster.kubectl.ready_node_labels(VIRTUAL_NODE_LABEL, REMOTE_ID_LABEL)
            missing = set(names) - up
            if missing:
                return False
            bad = unhealthy(liqo.info(), list(names), networking=liqo.options.networking)
            if bad:
                log.debug("peerings not Healthy yet: %s", bad)
            return not bad

        if wait_for(peered, s.ready_timeout, self._check_abort, cap=SHORT_POLL):
            return
        if missing:
            which = _and(sorted(names[c] for c in missing))
            raise KsiError(f"the virtual node of {which} did not become Ready within "
                           f"{s.ready_timeout:.0f}s" + (f" ({last})" if last else ""),
                           "check the Liqo gateway: UDP port " + _and(
                               [f"{ports[c]} on {names[c]}" for c in sorted(missing)]) +
                           " must be reachable from the head" if liqo.options.networking else
                           f"see 'kubectl get pods -n liqo' on the head and on {which}",
                           code=Exit.PEER_FAILED)
        raise KsiError("Liqo peerings not Healthy within "
                       f"{s.ready_timeout:.0f}s: " + "; ".join(
                           f"{names.get(c, c)}: {why}" for c, why in bad.items()),
                       "check the Liqo gateways (UDP) between the nodes; 'liqoctl info' "
                       "on the head shows details", code=Exit.PEER_FAILED)

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


def _and(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _unique(items: list[str]) -> list[str]:
    out: list[str] = []
    for x in items:
        if x and x not in out:
            out.append(x)
    return out


def dry_run(plan: Plan, runner: Runner, api_port: object = "<api port>") -> list[list[str]]:
    """For --dry-run of a multi-node step: decide this node's address, subnets and gateway
    port on the plan (as prepare() would, without the rendezvous) and return the Liqo
    commands this node would run. Changes nothing."""
    env = plan.env
    me, n = env.node_id, env.num_nodes
    options = LiqoOptions.from_settings(plan.settings)
    lan, _nets = _place(plan, env.nodes, runner, options)
    liqo = Liqo(runner, plan.kubeconfig, options=options)
    steps = [liqo.install_argv(plan.cluster, f"https://{plan.api_address}:{api_port}",
                               [lan], env.hostname)]
    if me == 0:
        for m in range(1, n):
            steps.append(liqo.peer_argv(pathlib.Path(f"<shared>/.ksi/{env.job_id}.{env.step_id}/"
                                             f"kubeconfig-{m}"), plan.gateway_nodeport,
                                        f"<address of {env.nodes[m] if m < len(env.nodes) else m}>",
                                        0))
            if options.networking:
                steps[-1][steps[-1].index("--gw-client-port") + 1] = "<its gateway host port>"
    return steps


def _place(plan: Plan, names: list[str], runner: Runner,
           options: LiqoOptions) -> tuple[str, subnets.NodeSubnets]:
    """This node's address (where the others reach it), the network around it, its pod and
    service subnets and (with Liqo's networking) the gateway NodePort, set on the plan."""
    s, env = plan.settings, plan.env
    if env.num_nodes == 1 and not s.api_address:
        plan.api_address = "127.0.0.1"   # a one-node federation: nobody else connects
    else:
        plan.api_address = address.node_address(s.api_address, env.hostname, names)
    lan = address.lan_cidr(plan.api_address, runner)
    nets = subnets.for_node(s.pod_subnet_pool, s.service_subnet_pool, env.node_id,
                            env.num_nodes, extra_reserved=[("the node network", lan)])
    plan.pod_subnet, plan.service_subnet = nets.pod, nets.service
    plan.gateway_nodeport = None
    if options.networking:
        _lo, hi = s.port_range()
        plan.gateway_nodeport = hi if plan.k8s_port != hi else hi - 1
    return lan, nets


def _int(value: Any) -> Optional[int]:
    return None if value in (None, "") else int(value)
