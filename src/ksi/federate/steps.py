"""The steps a multi-node (federated) run adds to a node's run, and the one list of steps of
`ksi run`:

    job -> plan -> [one task per node] -> rendezvous -> preflight -> reserve -> provision
    -> [liqo: in the background] -> ready -> access -> [liqo joined, ready message]
    -> peer (head) | serve (members) -> workload (head) -> teardown

The federation's steps apply only when the plan's mode is 'federated'."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ksi.errors import KsiError
from ksi.run.step import EndRun, Step
from ksi.run.steps import Access, Job, Plan, Preflight, Ready, Reserve, WarmStart, Workload
from ksi.run.steps.gpus import Gpus, GpuSetup

if TYPE_CHECKING:
    from ksi.federate.peering import LiqoInstall
    from ksi.federate.protocol import Federation
    from ksi.run.context import RunContext
    from ksi.run.outcome import Outcome


@dataclass
class Link:
    """What the federation's steps share: this node's protocol and its Liqo install."""

    fed: Optional[Federation] = None
    liqo: Optional[LiqoInstall] = None
    lan: str = ""   # the dry run's node network


def federated(ctx: RunContext) -> bool:
    return ctx.plan is not None and ctx.plan.mode == "federated"


def _head(ctx: RunContext) -> bool:
    return ctx.the_plan.env.node_id == 0


class FederatedStep(Step):
    def __init__(self, link: Link) -> None:
        self.link = link

    def applies(self, ctx: RunContext) -> bool:
        return federated(ctx)

    @property
    def fed(self) -> Federation:
        assert self.link.fed is not None, "the rendezvous has not run"
        return self.link.fed


class OneTaskPerNode(Step):
    """Only the first task of each node takes part; the others end at once (exit 0)."""

    guarded = False

    def applies(self, ctx: RunContext) -> bool:
        return federated(ctx) and not ctx.opts.dry_run

    def run(self, ctx: RunContext) -> None:
        env = ctx.the_plan.env
        if env.local_id != 0:
            ctx.console.info(f"multi-node run: only the first task of each node takes part; "
                             f"task {env.proc_id} (local {env.local_id}) on {env.hostname} "
                             "has nothing to do")
            raise EndRun(0)


class Rendezvous(FederatedStep):
    """Meet the other nodes, prove SHARED_DIR is shared, place this node (a new plan); its
    undo (after the report) leaves the rendezvous directory."""

    name = "rendezvous"
    late = True

    def run(self, ctx: RunContext) -> str:
        from ksi.federate.peering import LiqoInstall
        from ksi.federate.protocol import Federation

        fed = self.link.fed = Federation(ctx.the_plan, ctx.console, ctx.runner)
        detail = fed.prepare()
        ctx.plan = fed.plan
        assert ctx.guard is not None
        fed.attach(ctx.guard)
        self.link.liqo = LiqoInstall(fed)
        return detail

    def undo(self, ctx: RunContext) -> list[str]:
        if self.link.fed is not None:
            self.link.fed.close()
        return []

    def failed(self, ctx: RunContext, outcome: Outcome) -> None:
        if self.link.fed is not None:
            self.link.fed.on_failure(outcome, name_node=outcome.step != self.name)

    def interrupted(self, signum: int) -> Optional[KsiError]:
        return KsiError(f"interrupted by {signal.Signals(signum).name} while the nodes met",
                        "nothing to clean up", code=128 + signum)  # type: ignore[arg-type]

    def describe(self, ctx: RunContext) -> list[list[str]]:
        from ksi.federate.liqo import LiqoOptions
        from ksi.federate.placement import place
        from ksi.run.dryrun import Recorder

        p = ctx.the_plan
        # the node network is read for real (`ip addr`: it changes nothing)
        rec = Recorder(answer=lambda argv: ctx.runner.run(argv, timeout=20, check=False).stdout
                       if argv[:1] == ["ip"] else "")
        self.link.lan, _nets, ctx.plan = place(p, p.env.nodes, rec,
                                               LiqoOptions.from_settings(p.settings))
        return rec.argvs


class LiqoStart(FederatedStep):
    """Start `liqoctl install` in the background (its phase line is 'liqo')."""

    background = True

    def run(self, ctx: RunContext) -> None:
        assert self.link.liqo is not None
        self.link.liqo.start(ctx)

    def describe(self, ctx: RunContext) -> list[list[str]]:
        from ksi.federate.liqo import Liqo, LiqoOptions
        from ksi.run.dryrun import Recorder

        p = ctx.the_plan
        rec = Recorder()
        ctx.tools(rec)[0].network_subnets("kind")
        options = LiqoOptions.from_settings(p.settings)
        liqo = Liqo(rec, p.kubeconfig, options=options)
        if p.settings.image_archive_dir and not options.version:
            liqo.client_version()
        liqo.install(p.cluster, f"https://{p.api_address}:{ctx.state.api_port}",
                     [self.link.lan], p.env.hostname)
        return rec.argvs


class LiqoJoin(FederatedStep):
    """Wait for the Liqo install; tell the head this cluster is ready (a member hands over
    its kubeconfig)."""

    def run(self, ctx: RunContext) -> None:
        import os

        fed, p, st = self.fed, ctx.the_plan, ctx.state
        jd = fed.jobdir
        assert jd is not None and self.link.liqo is not None
        fed.check_abort()
        self.link.liqo.join(ctx)
        ready = {"node": fed.me, "host": p.env.hostname, "address": p.api_address,
                 "api_port": st.api_port, "gateway_host_port": st.gateway_host_port,
                 "gateway_nodeport": p.gateway_nodeport, "cluster_id": p.cluster,
                 "kubeconfig": f"kubeconfig-{fed.me}", "pid": os.getpid(),
                 "gpus": len(st.gpus.job) if st.gpus is not None else 0}
        if fed.head:
            jd.write(f"ready-{fed.me}.json", dict(ready, kubeconfig=""))
        else:
            jd.copy_private(p.kubeconfig, f"kubeconfig-{fed.me}")
            jd.write(f"ready-{fed.me}.json", ready)


class Peer(FederatedStep):
    """The head peers with every member and waits until all are Ready and Healthy."""

    name = "peer"

    def applies(self, ctx: RunContext) -> bool:
        return federated(ctx) and _head(ctx)

    def run(self, ctx: RunContext) -> str:
        from ksi.federate.liqo import Liqo
        from ksi.federate.peering import peer_all

        fed, p = self.fed, ctx.the_plan
        assert fed.jobdir is not None
        liqo = Liqo(ctx.runner, p.kubeconfig, options=fed.liqo_options)
        peers = peer_all(fed, ctx, liqo)
        fed.jobdir.write("peered.json", {"members": {str(m): r["cluster_id"]
                                                     for m, r in peers.items()}})
        ctx.state.variables.update({
            "KSI_NODE_COUNT": str(fed.n),
            "KSI_VIRTUAL_NODES": ",".join(r["cluster_id"] for _, r in sorted(peers.items())),
        })
        return (f"{len(peers)} virtual node(s) Ready and Healthy (concurrency "
                f"{max(1, p.settings.peer_concurrency)})")

    def describe(self, ctx: RunContext) -> list[list[str]]:
        from ksi.federate.liqo import REMOTE_ID_LABEL, VIRTUAL_NODE_LABEL, Liqo, LiqoOptions
        from ksi.run.dryrun import Recorder

        p, env = ctx.the_plan, ctx.the_plan.env
        options = LiqoOptions.from_settings(p.settings)
        rec = Recorder()
        liqo = Liqo(rec, p.kubeconfig, options=options)
        out = []
        for m in range(1, env.num_nodes):
            name = env.nodes[m] if m < len(env.nodes) else m
            out.append(liqo.peer_argv(
                Path(f"<shared>/.ksi/{env.job_id}.{env.step_id}/kubeconfig-{m}"),
                p.gateway_nodeport, f"<address of {name}>", "<its gateway host port>"))
        ctx.tools(rec)[2].ready_node_labels(VIRTUAL_NODE_LABEL, REMOTE_ID_LABEL)
        liqo.info()
        return out + rec.argvs


class Serve(FederatedStep):
    """A member keeps its cluster (a virtual node of the head's) until the head's done."""

    name = "serve"

    def applies(self, ctx: RunContext) -> bool:
        return federated(ctx) and not _head(ctx)

    def run(self, ctx: RunContext) -> str:
        from ksi.federate.peering import wait_done
        from ksi.federate.rendezvous import node_name

        done = wait_done(self.fed)
        return (f"the workload on {node_name(self.fed.names, 0)} ended with exit "
                f"{done.get('exit')}")


class FederatedWorkload(Workload):
    """The workload; in a federated run only on the head, which then tells the members."""

    def __init__(self, link: Link) -> None:
        self.link = link

    def applies(self, ctx: RunContext) -> bool:
        return not federated(ctx) or _head(ctx)

    def ended(self, ctx: RunContext, code: int) -> None:
        fed = self.link.fed
        if fed is not None and fed.jobdir is not None:
            fed.check_abort()  # a member died while the workload ran: that is the outcome
            fed.jobdir.write("done.json", {"exit": code})


def run_steps() -> list[Step]:
    """The one list of steps of `ksi run` (each applies or not by the plan's mode)."""
    link = Link()
    return [Job(), Plan(), OneTaskPerNode(), Rendezvous(link), Preflight(), Gpus(), Reserve(),
            WarmStart(), LiqoStart(link), Ready(), GpuSetup(), Access(), LiqoJoin(link),
            Peer(link), Serve(link), FederatedWorkload(link)]
