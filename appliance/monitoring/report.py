"""Reading monitoring back: per-endpoint summaries of recent traffic (latency percentiles, errors,
confidence, warnings, ratings, with trends), drift against the deployed version's reference
profile, and DORA figures from the event history. Read-only; the CLI, HTTP API, alert rules and
TUI all use these."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from appliance.errors import InvalidInput, NotFound
from appliance.models.lineage import task_of
from appliance.monitoring.dora import Change, compute, parse_time
from appliance.monitoring.drift import compare
from appliance.monitoring.predictions import since_text
from appliance.monitoring.profiles import ensure_profile
from appliance.services import Services
from appliance.tasks import DEFAULT_TASK, Task, get_task

TREND_BUCKETS = 12


def percentile(values: Sequence[float | None], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of unsorted values (None skipped); None when empty."""
    ordered = sorted(v for v in values if v is not None)
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return round(ordered[rank - 1], 3)


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(sum(known) / len(known), 4) if known else None


def summarize(rows: Sequence[dict[str, Any]], window_s: float) -> dict[str, Any]:
    """Figures over one endpoint's rows (oldest first) in a window of `window_s` seconds."""
    ok = [r for r in rows if r["error"] is None]
    latencies = [r["latency_ms"] for r in ok]
    ratings = [r["rating"] for r in rows if r["rating"] is not None]
    low_light = sum(1 for r in ok if "low_light" in r["warnings"])
    return {
        "predictions": len(rows),
        "errors": len(rows) - len(ok),
        "error_rate": round((len(rows) - len(ok)) / len(rows), 4) if rows else None,
        "throughput_per_s": round(len(rows) / window_s, 3) if window_s else None,
        "latency_ms": {
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "p99": percentile(latencies, 99),
        },
        "queue_ms_p50": percentile([r["queue_ms"] for r in ok], 50),
        "inference_ms_p50": percentile([r["inference_ms"] for r in ok], 50),
        "mean_batch_size": _mean([r["batch_size"] for r in ok]),
        "mean_confidence": _mean([r["confidence"] for r in ok]),
        "low_light_rate": round(low_light / len(ok), 4) if ok else None,
        "ratings": len(ratings),
        "mean_rating": _mean(ratings),
        "versions": sorted({r["model_version_id"] for r in rows if r["model_version_id"]}),
    }


def trends(
    rows: Sequence[dict[str, Any]], start: datetime, end: datetime, buckets: int = TREND_BUCKETS
) -> dict[str, list[float | None]]:
    """Per time bucket: count, p95 latency, mean confidence, low-light share, mean rating."""
    span = max((end - start).total_seconds(), 1e-9)
    grouped: list[list[dict[str, Any]]] = [[] for _ in range(buckets)]
    for row in rows:
        offset = (parse_time(row["created_at"]) - start).total_seconds()
        grouped[min(buckets - 1, max(0, int(offset / span * buckets)))].append(row)
    out: dict[str, list[float | None]] = {
        "count": [], "p95_latency_ms": [], "confidence": [], "low_light_rate": [], "rating": [],
    }  # fmt: skip
    for group in grouped:
        ok = [r for r in group if r["error"] is None]
        out["count"].append(float(len(group)))
        out["p95_latency_ms"].append(percentile([r["latency_ms"] for r in ok], 95))
        out["confidence"].append(_mean([r["confidence"] for r in ok]))
        dark = sum(1 for r in ok if "low_light" in r["warnings"])
        out["low_light_rate"].append(round(dark / len(ok), 4) if ok else None)
        out["rating"].append(_mean([r["rating"] for r in group if r["rating"] is not None]))
    return out


def summary(
    services: Services, workspace: str, endpoint: str | None = None, window_s: float = 3600,
    limit: int = 100_000,
) -> dict[str, Any]:  # fmt: skip
    """Each endpoint's figures over the last `window_s` seconds (at most its newest `limit`
    predictions), with trends."""
    now = datetime.now(UTC)
    start = now - timedelta(seconds=window_s)
    rows = services.predictions.window(workspace, endpoint, since_text(window_s, now), limit)
    endpoints = sorted({r["endpoint"] for r in rows} | _deployed(services, workspace, endpoint))
    out = []
    for name in endpoints:
        mine = [r for r in rows if r["endpoint"] == name]
        out.append(
            {"endpoint": name, **summarize(mine, window_s), "trend": trends(mine, start, now)}
        )
    return {"workspace": workspace, "window_s": window_s, "endpoints": out}


def drift(
    services: Services, workspace: str, endpoint: str, window_s: float = 3600,
    limit: int = 100_000,
) -> dict[str, Any]:  # fmt: skip
    """Recent traffic of `endpoint` (at most its newest `limit` predictions) against the
    reference profile of the version it serves."""
    settings = services.settings
    deployment = services.deployments.get(workspace, endpoint)
    version = _version(services, deployment["model_version_id"])
    now = datetime.now(UTC)
    start = now - timedelta(seconds=window_s)
    rows = services.predictions.window(workspace, endpoint, since_text(window_s, now), limit)
    ok = [r for r in rows if r["error"] is None]
    profile = ensure_profile(services, version)
    features = []
    if profile is not None:
        features = [
            asdict(d)
            for d in compare(
                profile["features"], [r["features"] for r in ok], settings.drift_psi_threshold,
                settings.drift_ks_threshold, settings.drift_min_samples,
            )
        ]  # fmt: skip
    # Words of the answers the training answers never had: for a task that writes text (a
    # description), whose dataset rows' `text` is the answer; a label is not a text.
    writes = _task(services, workspace, version).outputs[0].name == "description"
    words = profile["words"] if profile else {}
    seen = {w for r in ok for w in (r["description"] or "").lower().split()} if writes else set()
    return {
        "workspace": workspace,
        "endpoint": endpoint,
        "model": version["name"],
        "version": version["version"],
        "reference": profile["dataset"] if profile else None,
        "window_s": window_s,
        "predictions": len(ok),
        "min_samples": settings.drift_min_samples,
        "features": features,
        "drifted": [f["feature"] for f in features if f["drifted"]],
        "new_answer_words": sorted(w for w in seen if w.isalpha() and w not in words)[:20],
        "trend": trends(rows, start, now),
    }


def dora(services: Services, workspace: str, since: datetime | None = None) -> dict[str, Any]:
    """DORA figures over the workspace's event history (default: the last 30 days)."""
    until = datetime.now(UTC)
    since = since or until - timedelta(days=30)
    ws = services.workspaces.get(workspace)
    events = services.registry.query(
        "SELECT * FROM events WHERE workspace_id = ? ORDER BY id", (ws["id"],)
    )
    for event in events:
        event["detail"] = json.loads(event["detail"])
    version_ids = {e["model_version_id"] for e in events if e["kind"] == "deployed"} - {None}
    changes = {vid: change for vid in version_ids if (change := _change(services, vid))}
    return {"workspace": workspace, **asdict(compute(events, changes, since, until))}


def _change(services: Services, version_id: str) -> Change | None:
    """When the change a version ships was made: its run's or dataset version's creation."""
    rows = services.registry.query(
        "SELECT r.created_at AS run_at, dv.created_at AS data_at FROM model_versions v"
        " LEFT JOIN runs r ON r.id = v.run_id"
        " LEFT JOIN dataset_versions dv ON dv.dataset_id = v.dataset_id"
        " AND dv.digest = v.dataset_digest WHERE v.id = ?",
        (version_id,),
    )
    times = [t for t in (rows[0]["run_at"], rows[0]["data_at"]) if t] if rows else []
    return Change(version_id, min(times)) if times else None


def _task(services: Services, workspace: str, version: dict[str, Any]) -> Task:
    """The version's task; the default one for a version that records none (hand-registered
    before tasks, with no recipe)."""
    try:
        return get_task(task_of(services, workspace, version))
    except InvalidInput:
        return get_task(DEFAULT_TASK)


def _version(services: Services, version_id: str) -> dict[str, Any]:
    rows = services.registry.query(
        "SELECT v.*, m.name FROM model_versions v JOIN models m ON m.id = v.model_id"
        " WHERE v.id = ?",
        (version_id,),
    )
    if not rows:
        raise NotFound(f"model version {version_id} no longer exists")
    return rows[0]


def _deployed(services: Services, workspace: str, endpoint: str | None) -> set[str]:
    names = {d["endpoint"] for d in services.deployments.list(workspace)}
    return names if endpoint is None else names & {endpoint}
