"""The multi-node steps that talk to Liqo: its install in a helper thread (overlapping the
readiness and access steps: a measured speed-up), the head's peering with every member, and a
member's wait for the head's `done`."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Optional

from ksi.errors import Exit, KsiError
from ksi.federate import subnets
from ksi.federate.liqo import REMOTE_ID_LABEL, VIRTUAL_NODE_LABEL, Liqo, unhealthy
from ksi.federate.placement import and_list, as_int, unique
from ksi.federate.rendezvous import SHORT_POLL, backoff, node_name, wait_for

if TYPE_CHECKING:
    from ksi.federate.protocol import Federation
    from ksi.run.context import RunContext

log = logging.getLogger("ksi.federate")
DONE_POLL = 0.5  # a member's wait for the head's `done` (2 directory reads a second)


class LiqoInstall:
    """`liqoctl install` in a helper thread, started right after kind created the cluster,
    while the main thread waits for the nodes and makes the admin token (liqoctl needs only
    the API server; its install waits for its own pods). join() waits for it. If the run
    ends early, teardown stops the thread's command (runner.stop_all)."""

    def __init__(self, fed: Federation) -> None:
        self.fed = fed
        self.thread: Optional[threading.Thread] = None
        self.error: Optional[BaseException] = None

    def start(self, ctx: RunContext) -> None:
        self.thread = threading.Thread(target=self._install, args=(ctx,), daemon=True,
                                       name="ksi-liqo-install")
        self.thread.start()

    def _install(self, ctx: RunContext) -> None:
        try:
            self.phase(ctx)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread by join()
            self.error = exc

    def phase(self, ctx: RunContext) -> None:
        fed, p, st = self.fed, ctx.the_plan, ctx.state
        liqo = Liqo(ctx.runner, p.kubeconfig, options=fed.liqo_options)
        with ctx.console.phase("liqo") as ph:
            fed.reserved = reserved_subnets(fed, ctx)
            subnets.check_disjoint([("pod subnet", p.pod_subnet),
                                    ("service subnet", p.service_subnet)],
                                   [("a reserved subnet", r) for r in fed.reserved])
            api_url = f"https://{p.api_address}:{st.api_port}"
            # Liqo's images from the archive dir, if any (those of the version installed)
            if p.settings.image_archive_dir:
                ctx.rt.preload_liqo(p.cluster, fed.liqo_options.version
                                    or liqo.client_version(),
                                    fed.liqo_options.components())
            liqo.install(p.cluster, api_url, fed.reserved, p.env.hostname)
            ph["detail"] = f"cluster id {p.cluster}, API {api_url}" + (
                "" if fed.liqo_options.networking else ", networking module off")

    def join(self, ctx: RunContext) -> None:
        """Wait for the install thread (another node's failure still interrupts)."""
        if self.thread is None:  # not started: install here
            self.phase(ctx)
            return
        while self.thread.is_alive():
            self.fed.check_abort()
            self.thread.join(0.1)
        if self.error is not None:
            raise self.error


def reserved_subnets(fed: Federation, ctx: RunContext) -> list[str]:
    """What Liqo must not use: the node LAN and the runtime's kind network."""
    lan = [] if fed.lan.startswith("127.") else [fed.lan]
    return unique([*lan, *ctx.provider.network_subnets("kind")])


def wait_done(fed: Federation) -> dict:
    """Member: wait (as long as the workload runs) for the head's done. Polled every
    0.5 s at most: the job ends when the last member has torn down."""
    jd = fed.jobdir
    assert jd is not None
    for delay in backoff(DONE_POLL):
        fed.check_abort()
        jd.listing()
        done = jd.read("done.json")
        if done is not None:
            if fed.watch is not None:
                fed.watch.ignore.add(0)  # the head ends now: that is no failure
            return done
        time.sleep(delay)
    return {}  # pragma: no cover



def peer_all(fed: Federation, ctx: RunContext, liqo: Liqo) -> dict[int, dict]:
    """Head: peer with each member as soon as it is ready (at most peer_concurrency
    `liqoctl peer` at once), then wait until all are peered (wait_peered)."""
    s, jd = fed.plan.settings, fed.jobdir
    assert jd is not None
    members = [i for i in range(fed.n) if i != fed.me]
    pending = set(members)
    ready: dict[int, dict] = {}
    results: dict[int, Optional[BaseException]] = {}
    lock = threading.Lock()
    gate = threading.BoundedSemaphore(max(1, int(s.peer_concurrency)))

    def peer_one(m: int, msg: dict) -> None:
        name = node_name(fed.names, m, msg)
        try:
            with gate:
                if fed.abort_error is not None or fed.closed:
                    raise fed.abort_error or KsiError("stopped", code=Exit.PEER_FAILED)
                gpus = as_int(msg.get("gpus")) or 0
                liqo.peer(jd.file(f"kubeconfig-{m}"), as_int(msg.get("gateway_nodeport")),
                          str(msg["address"]), as_int(msg.get("gateway_host_port")),
                          what=f"liqoctl peer with {name}", resource_slice=not gpus)
                if gpus:  # its virtual node shows the member's GPUs
                    advertise_gpus(ctx, liqo, str(msg["cluster_id"]), gpus, name)
            err: Optional[BaseException] = None
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            err = exc
        with lock:
            results[m] = err

    deadline = time.monotonic() + s.rendezvous_timeout
    delays = backoff(SHORT_POLL)
    while True:
        fed.check_abort()
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
            raise KsiError(f"peering with {node_name(fed.names, m)} failed: {exc!r}",
                           "report this", code=Exit.PEER_FAILED)
        if not pending and finished == len(members):
            break
        if pending and time.monotonic() > deadline:
            raise KsiError(
                f"{and_list([node_name(fed.names, m) for m in sorted(pending)])} did not get "
                f"ready within {s.rendezvous_timeout:.0f}s (rendezvous_timeout)",
                "see those nodes' output; raise rendezvous_timeout if their clusters are "
                "just slow to start", code=Exit.RENDEZVOUS_FAILED)
        time.sleep(next(delays))
    wait_peered(fed, ctx, liqo, ready)
    return ready



def advertise_gpus(ctx: RunContext, liqo: Liqo, remote_id: str, gpus: int, name: str) -> None:
    """The member's ResourceSlice with its job GPUs (nvidia.com/gpu), applied on the head:
    Liqo then makes the virtual node with that capacity."""
    from ksi.gpu.node import RESOURCE

    ctx.kubectl.run("apply", "-f", "-", input=liqo.resource_slice(remote_id, {RESOURCE:
                                                                                str(gpus)}),
                    what=f"kubectl apply (the ResourceSlice of {name} with {gpus} "
                         f"{RESOURCE})", code=Exit.PEER_FAILED,
                    fix="see 'kubectl get resourceslices -A' on the head")


def wait_peered(fed: Federation, ctx: RunContext, liqo: Liqo, ready: dict[int, dict]) -> None:
    """Head: wait until every member's virtual node is Ready, then every peering
    Healthy: one `kubectl get nodes` (and then one `liqoctl info`) per round for all
    members, polled at most every 0.25 s (a virtual node registers 1-5 s after
    `liqoctl peer`)."""
    s = fed.plan.settings
    names = {r["cluster_id"]: node_name(fed.names, m, r) for m, r in ready.items()}
    ports = {r["cluster_id"]: r.get("gateway_host_port") for r in ready.values()}
    missing: set[str] = set(names)
    bad: dict[str, str] = {}
    last = ""

    def peered() -> bool:
        nonlocal missing, bad, last
        up, last = ctx.kubectl.ready_node_labels(VIRTUAL_NODE_LABEL, REMOTE_ID_LABEL)
        missing = set(names) - up
        if missing:
            return False
        bad = unhealthy(liqo.info(), list(names), networking=liqo.options.networking)
        if bad:
            log.debug("peerings not Healthy yet: %s", bad)
        return not bad

    if wait_for(peered, s.ready_timeout, fed.check_abort, cap=SHORT_POLL):
        return
    if missing:
        which = and_list(sorted(names[c] for c in missing))
        raise KsiError(f"the virtual node of {which} did not become Ready within "
                       f"{s.ready_timeout:.0f}s" + (f" ({last})" if last else ""),
                       "check the Liqo gateway: UDP port " + and_list(
                           [f"{ports[c]} on {names[c]}" for c in sorted(missing)]) +
                       " must be reachable from the head" if liqo.options.networking else
                       f"see 'kubectl get pods -n liqo' on the head and on {which}",
                       code=Exit.PEER_FAILED)
    raise KsiError("Liqo peerings not Healthy within "
                   f"{s.ready_timeout:.0f}s: " + "; ".join(
                       f"{names.get(c, c)}: {why}" for c, why in bad.items()),
                   "check the Liqo gateways (UDP) between the nodes; 'liqoctl info' "
                   "on the head shows details", code=Exit.PEER_FAILED)
