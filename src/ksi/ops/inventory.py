"""`ksi ls`: what KSI has on this node for the current user (run records and kind node
containers, each with the state of its run; ksi.state.inventory judges them)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Mapping, Optional

from ksi.errors import KsiError
from ksi.plan import names
from ksi.state.inventory import Item, classify, from_record, read_records, state_root, this_host

if TYPE_CHECKING:
    from ksi.runner import Runner
    from ksi.settings import Settings


def inventory(settings: Settings, runner: Runner, environ: Mapping[str, str], *,
              containers: bool = True, registry: bool = False,
              provider_name: Optional[str] = None, all_jobs: bool = False
              ) -> tuple[list[Item], list[str]]:
    """(items, problems): this user's clusters on this host (plus registry entries)."""
    uid = os.getuid()
    host = this_host()
    problems: list[str] = []
    items = read_records(state_root(settings, environ), uid)
    by_name = {i.cluster: i for i in items}
    if containers:
        from ksi.provision import providers

        try:
            prov = providers.get(provider_name or settings.provider, runner)
            if runner.which(prov.binary):
                for cname, cluster in prov.all_kind_containers():
                    if names.job_of(cluster) is None:
                        continue  # not a KSI cluster: never ours to touch
                    it = by_name.get(cluster)
                    if it is None:
                        it = Item(cluster=cluster, job_id=names.job_of(cluster) or "",
                                  host=host, provider=prov.name, source="runtime", uid=uid)
                        items.append(it)
                        by_name[cluster] = it
                    it.containers.append(cname)
        except KsiError as exc:
            problems.append(f"cannot list node containers: {exc.cause}")
    if registry and settings.registry_dir:
        from ksi.state.registry import entries

        for rec in entries(settings.registry_dir, uid):
            if rec.get("cluster") not in by_name:
                it = from_record(rec, "registry")
                items.append(it)
                by_name[it.cluster] = it
    classify(items, runner, host, uid, all_jobs=all_jobs)
    return items, problems
