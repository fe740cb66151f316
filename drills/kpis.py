"""A drill's KPIs (DESIGN "Drills: report"): per replication, then across replications with
95% confidence intervals.

Response time is reported -> first unit on scene; whether a call was within its target uses
the live console's own rule (``dispatch.targets.outcome``: an arrival exactly on the target
counts; a call no unit reached is missed once its target has passed, and pending, so left
out, if the run ended first). Percentiles are linear between order statistics, as
PostgreSQL's ``percentile_cont`` computes the live KPIs. Calls reported before ``warmup_s``
are left out of every figure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import numpy as np

from dispatch.targets import TargetTable, outcome, share
from drills.calls import Calls
from drills.engine import Outcome

HIST_BIN_S = 60
HIST_BINS = 60  # 0 .. 1 h, then one bin for everything later
LATE_POINTS = 5000


def _q(values: np.ndarray) -> dict[str, float | None]:
    if not len(values):
        return {"p50": None, "p90": None, "p95": None, "mean": None}
    p50, p90, p95 = np.percentile(values, [50, 90, 95], method="linear")
    return {"p50": float(p50), "p90": float(p90), "p95": float(p95), "mean": float(values.mean())}


def replication(
    out: Outcome, calls: Calls, scenario_start: Any, targets: TargetTable
) -> dict[str, Any]:
    """The KPIs of one replication, plus what the report plots (hourly figures, the
    response-time histogram, where responses were late)."""
    keep = calls.t_s >= out.warmup_s
    idx = np.flatnonzero(keep)
    resp = out.response_s
    end = scenario_start + timedelta(seconds=out.duration_s)
    verdict: dict[int, str] = {}
    by_type: dict[str, list[int]] = {}
    for k in idx:
        reported = scenario_start + timedelta(seconds=float(calls.t_s[k]))
        r = resp[k]
        on_scene = None if np.isnan(r) else reported + timedelta(seconds=float(r))
        target = targets.for_type(calls.type[k]).response_s
        verdict[int(k)] = outcome(
            reported_at=reported, on_scene_at=on_scene, response_s=target, as_of=end
        )
        by_type.setdefault(calls.type[k], []).append(int(k))
    answered = resp[idx][~np.isnan(resp[idx])]

    def within(ks: Sequence[int]) -> float | None:
        got = [verdict[k] for k in ks]
        return share(got.count("within"), got.count("missed"))

    span = out.duration_s - out.warmup_s
    samples = [s for s in out.samples if s[0] >= out.warmup_s]
    kpis = {
        "incidents": len(idx),
        "answered": len(answered),
        "response_s": _q(answered),
        "within_target": within(list(idx)),
        "within_target_by_type": {t: within(ks) for t, ks in sorted(by_type.items())},
        "response_s_by_type": {
            t: _q(resp[ks][~np.isnan(resp[ks])]) for t, ks in sorted(by_type.items())
        },
        "queued_fraction": float(out.queued[idx].mean()) if len(idx) else None,
        "mean_queue_wait_s": float(out.wait_s[idx].mean()) if len(idx) else None,
        "utilisation": out.busy_s / (out.n_units * out.duration_s) if out.n_units else None,
        "coverage": float(np.mean([s[1] for s in samples])) if samples else None,
        "unmet_lines": out.unmet_slots,
        "incidents_per_day": len(idx) / span * 86_400 if span > 0 else None,
    }
    return {"kpis": kpis, **_plots(out, calls, idx, verdict, scenario_start)}


def _plots(
    out: Outcome, calls: Calls, idx: np.ndarray, verdict: dict[int, str], start: Any
) -> dict[str, Any]:
    hour0 = start.hour + start.minute / 60
    hour = ((calls.t_s[idx] / 3600 + hour0) // 1 % 24).astype(int)
    resp = out.response_s[idx]
    by_hour = []
    for h in range(24):
        mask = hour == h
        got = [verdict[int(k)] for k in idx[mask]]
        r = resp[mask]
        r = r[~np.isnan(r)]
        samp = [
            s
            for s in out.samples
            if int((s[0] / 3600 + hour0) // 1 % 24) == h and s[0] >= out.warmup_s
        ]
        by_hour.append(
            {
                "hour": h,
                "incidents": int(mask.sum()),
                "within_target": share(got.count("within"), got.count("missed")),
                "response_mean_s": float(r.mean()) if len(r) else None,
                "busy_units": float(np.mean([s[2] for s in samp])) if samp else None,
                "coverage": float(np.mean([s[1] for s in samp])) if samp else None,
            }
        )
    answered = resp[~np.isnan(resp)]
    hist = np.bincount(
        np.minimum(answered // HIST_BIN_S, HIST_BINS).astype(int), minlength=HIST_BINS + 1
    )
    late = [
        [round(float(calls.lon[k]), 5), round(float(calls.lat[k]), 5)]
        for k in idx
        if verdict[int(k)] == "missed"
    ][:LATE_POINTS]
    return {"by_hour": by_hour, "histogram": hist.tolist(), "late": late}


# --- across replications -----------------------------------------------------------------
SHARES = frozenset(
    {"within_target", "within_target_by_type", "queued_fraction", "utilisation", "coverage"}
)


def _ci(values: list[float], *, share: bool) -> list[float] | None:
    """Student-t 95% interval of the mean, cut to what the figure can be (at least 0; at
    most 1 for a share); None with fewer than two replications."""
    from scipy import stats  # 2 s to import: worker processes pay it only when it is needed

    n = len(values)
    if n < 2:
        return None
    mean = float(np.mean(values))
    sd = float(np.std(values, ddof=1))
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return [max(0.0, mean - half), min(1.0, mean + half) if share else mean + half]


def _combine(items: list[Any], key: str = "") -> tuple[Any, Any]:
    """Mean and ci95 of each numeric leaf across replications (None values left out);
    ``key`` is the leaf's (or its parent's, for by-type shares) name."""
    first = next((x for x in items if x is not None), None)
    if isinstance(first, dict):
        keys = sorted({k for x in items if x for k in x})
        inherit = key == "within_target_by_type"
        pairs = {k: _combine([x.get(k) if x else None for x in items], key if inherit else k)
                 for k in keys}  # fmt: skip
        return {k: v[0] for k, v in pairs.items()}, {k: v[1] for k, v in pairs.items()}
    values = [float(x) for x in items if x is not None]
    if not values:
        return None, None
    return float(np.mean(values)), _ci(values, share=key in SHARES)


def across(reps: list[dict[str, Any]]) -> dict[str, Any]:
    """A policy's report entry from its replications, in replication order."""
    kpis, ci95 = _combine([r["kpis"] for r in reps])
    hours, _ = _combine([{str(h["hour"]): h for h in r["by_hour"]} for r in reps])
    hist = np.sum([r["histogram"] for r in reps], axis=0)
    return {
        "kpis": kpis,
        "ci95": ci95,
        "per_replication": [r["kpis"]["response_s"]["p90"] for r in reps],
        "by_hour": [{**hours[str(h)], "hour": h} for h in range(24)],
        "histogram": {"bin_s": HIST_BIN_S, "counts": hist.tolist(), "last_bin": "later"},
        "late": reps[0]["late"],
    }
