"""A drill's (replication, policy) pairs on a Dask cluster, for runs larger than one machine.

``drills.runner.run(..., backend="dask", address=...)`` comes here. Each pair is one Dask
task running ``drills.runner.simulate_pair``; each worker process loads the road network
once, from the graph cache named by the ``NetworkSource`` (the cache folder must be readable
by every worker: a shared disk, or the same path on each machine), and keeps it for every
later task of that network. With no ``address`` a local cluster of two single-threaded
worker processes is started for the run and stopped after it (what the tests use); with
one, the tasks go to that scheduler (``dask scheduler`` / ``dask worker ADDRESS``, each
worker with this project installed and the same OSM file at the same path).

Dask is an optional extra so the default install stays small: ``uv sync --extra
distributed``. Results come back in the order they finish; the runner sorts them, so the
report is the same as an in-process run's.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from typing import Any

from drills.scenario import Inject, Scenario
from drills.travel import Travel
from drills.world import Fleet, NetworkSource

MISSING = "the distributed extra is not installed: uv sync --extra distributed"
LOCAL_WORKERS = 2


class DistributedUnavailable(RuntimeError):
    """Dask is not installed (the ``distributed`` extra)."""


# --- in a worker -----------------------------------------------------------------------------
_LOCK = threading.Lock()
_LOADED: dict[NetworkSource, Travel] = {}


def _travel(source: NetworkSource) -> Travel:
    """This process's drive times on ``source``: loaded on the first task, then reused."""
    from drills.runner import _engine_from

    with _LOCK:
        travel = _LOADED.get(source)
        if travel is None:
            _LOADED.clear()  # one network at a time: a worker may serve many runs
            travel = _LOADED[source] = Travel(_engine_from(source))
        return travel


def _pair(
    source: NetworkSource,
    scenario: Scenario,
    fleet: Fleet,
    injects: Sequence[Inject],
    replication: int,
    policy: str,
) -> dict[str, Any]:
    from drills.runner import simulate_pair

    return simulate_pair(scenario, fleet, injects, replication, policy, _travel(source))


# --- on the caller's side --------------------------------------------------------------------
def _dask() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise DistributedUnavailable(MISSING) from exc
    return distributed


def run_on_dask(
    scenario: Scenario,
    fleet: Fleet,
    injects: Sequence[Inject],
    pairs: Sequence[tuple[int, str]],
    network: NetworkSource,
    address: str | None,
) -> Iterator[dict[str, Any]]:
    """Each pair's result (``simulate_pair``'s dict), as the cluster finishes them."""
    dd = _dask()
    with ExitStack() as stack:
        if address is None:
            cluster = stack.enter_context(
                dd.LocalCluster(
                    n_workers=LOCAL_WORKERS,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                )
            )
            client = stack.enter_context(dd.Client(cluster))
        else:
            client = stack.enter_context(dd.Client(address))
        # Sent once to every worker rather than once per task.
        shared = client.scatter(
            [network, scenario, fleet, tuple(injects)], broadcast=True, hash=False
        )
        run_id = uuid.uuid4().hex[:12]
        futures = [
            client.submit(_pair, *shared, r, p, key=f"drill-{run_id}-{r}-{p}", pure=False)
            for r, p in pairs
        ]
        try:
            for future in dd.as_completed(futures):
                yield future.result()
        finally:
            client.cancel(futures)
