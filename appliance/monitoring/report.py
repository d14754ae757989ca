"""Reading monitoring back: per-endpoint summaries of recent traffic (latency percentiles, errors,
confidence, warnings, ratings, the label-free quality estimate, keyword adherence, with trends),
quality by slice, drift against the deployed version's reference profile and reference
embeddings, and DORA figures from the event history. Read-only; the CLI, HTTP API, alert rules
and TUI all use these."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from appliance.errors import InvalidInput, NotFound
from appliance.models.lineage import task_of
from appliance.monitoring import slices as slicing
from appliance.monitoring.dora import Change, compute, parse_time
from appliance.monitoring.drift import compare
from appliance.monitoring.embeddings import MIN_LIVE, from_blob, mmd_test
from appliance.monitoring.keywords import keyword_adherence
from appliance.monitoring.predictions import since_text
from appliance.monitoring.profiles import ensure_profile
from appliance.monitoring.quality import estimate
from appliance.services import Services
from appliance.tasks import DEFAULT_TASK, Task, get_task
from appliance.trust import store

log = logging.getLogger("appliance.monitoring")

TREND_BUCKETS = 12
LIVE_EMBEDDINGS = 500
"""The newest embeddings of a window that the embedding drift test reads."""
PERMUTATIONS = 200


@dataclass(frozen=True)
class Calibrated:
    """What the quality estimate knows of an endpoint's versions."""

    versions: frozenset[str] = frozenset()
    """Versions with a calibration: their confidences are chances of being right."""
    reference: float | None = None
    """The deployed version's held-out score (`heldout_accuracy` of its calibration)."""
    metric: str | None = None
    """What that score is: the deployed version's task's gate metric."""


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


def _share(rows: Sequence[dict[str, Any]], warning: str) -> float | None:
    """The share of `rows` (answered ones) that carry `warning`; None without rows."""
    return round(sum(1 for r in rows if warning in r["warnings"]) / len(rows), 4) if rows else None


def _calibrated_confidences(
    ok: Sequence[dict[str, Any]], calibrated: Calibrated | None
) -> list[float]:
    if calibrated is None or not calibrated.versions:
        return []
    return [
        r["confidence"]
        for r in ok
        if r["confidence"] is not None and r["model_version_id"] in calibrated.versions
    ]


def estimated_quality(
    rows: Sequence[dict[str, Any]], calibrated: Calibrated | None
) -> dict[str, Any] | None:
    """The label-free estimate of the share of right answers (quality.estimate) over the
    answered predictions of calibrated versions, with the deployed version's held-out score and
    the share of rated predictions rated 4 or 5 beside it; None without a calibrated one."""
    confidences = _calibrated_confidences([r for r in rows if r["error"] is None], calibrated)
    if not confidences or calibrated is None:
        return None
    value, low, high = estimate(confidences)
    rated = [r["rating"] for r in rows if r["rating"] is not None]
    return {
        "value": round(value, 4),
        "low": round(low, 4),
        "high": round(high, 4),
        "predictions": len(confidences),
        "reference": calibrated.reference,
        "metric": calibrated.metric,
        "feedback": round(sum(1 for x in rated if x >= 4) / len(rated), 4) if rated else None,
        "rated": len(rated),
    }


def summarize(
    rows: Sequence[dict[str, Any]], window_s: float, calibrated: Calibrated | None = None
) -> dict[str, Any]:
    """Figures over one endpoint's rows (oldest first) in a window of `window_s` seconds;
    `calibrated` says which versions' confidences the quality estimate may use."""
    ok = [r for r in rows if r["error"] is None]
    latencies = [r["latency_ms"] for r in ok]
    ratings = [r["rating"] for r in rows if r["rating"] is not None]
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
        "low_light_rate": _share(ok, "low_light"),
        "uncertain_rate": _share(ok, "uncertain"),
        "ratings": len(ratings),
        "mean_rating": _mean(ratings),
        "estimated_quality": estimated_quality(rows, calibrated),
        "keywords": keyword_adherence(rows),
        "versions": sorted({r["model_version_id"] for r in rows if r["model_version_id"]}),
    }


def trends(
    rows: Sequence[dict[str, Any]], start: datetime, end: datetime, buckets: int = TREND_BUCKETS,
    calibrated: Calibrated | None = None,
) -> dict[str, list[float | None]]:  # fmt: skip
    """Per time bucket: count, p95 latency, mean confidence, low-light and uncertain shares,
    mean rating, and the quality estimate (the mean calibrated confidence)."""
    span = max((end - start).total_seconds(), 1e-9)
    grouped: list[list[dict[str, Any]]] = [[] for _ in range(buckets)]
    for row in rows:
        offset = (parse_time(row["created_at"]) - start).total_seconds()
        grouped[min(buckets - 1, max(0, int(offset / span * buckets)))].append(row)
    out: dict[str, list[float | None]] = {
        "count": [], "p95_latency_ms": [], "confidence": [], "low_light_rate": [], "rating": [],
        "uncertain_rate": [], "estimated_quality": [],
    }  # fmt: skip
    for group in grouped:
        ok = [r for r in group if r["error"] is None]
        out["count"].append(float(len(group)))
        out["p95_latency_ms"].append(percentile([r["latency_ms"] for r in ok], 95))
        out["confidence"].append(_mean([r["confidence"] for r in ok]))
        out["low_light_rate"].append(_share(ok, "low_light"))
        out["rating"].append(_mean([r["rating"] for r in group if r["rating"] is not None]))
        out["uncertain_rate"].append(_share(ok, "uncertain"))
        out["estimated_quality"].append(_mean(_calibrated_confidences(ok, calibrated)))
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
    deployed = _deployed(services, workspace, endpoint)
    endpoints = sorted({r["endpoint"] for r in rows} | set(deployed))
    out = []
    for name in endpoints:
        mine = [r for r in rows if r["endpoint"] == name]
        calibrated = _calibrated(services, workspace, mine, deployed.get(name))
        out.append(
            {
                "endpoint": name,
                **summarize(mine, window_s, calibrated),
                "trend": trends(mine, start, now, calibrated=calibrated),
            }
        )
    return {"workspace": workspace, "window_s": window_s, "endpoints": out}


def drift(
    services: Services, workspace: str, endpoint: str, window_s: float = 3600,
    limit: int = 100_000, embeddings: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Recent traffic of `endpoint` (at most its newest `limit` predictions) against the
    reference profile of the version it serves, and (unless `embeddings` is False) its newest
    embeddings against the version's reference embeddings."""
    settings = services.settings
    deployment = services.deployments.get(workspace, endpoint)
    version = _version(services, deployment["model_version_id"])
    now = datetime.now(UTC)
    start = now - timedelta(seconds=window_s)
    since = since_text(window_s, now)
    rows = services.predictions.window(workspace, endpoint, since, limit)
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
        "embedding": (
            embedding_drift(services, workspace, endpoint, version["id"], since)
            if embeddings
            else None
        ),
        "trend": trends(
            rows, start, now, calibrated=_calibrated(services, workspace, rows, version["id"])
        ),
    }


def slices(
    services: Services, workspace: str, endpoint: str | None = None, window_s: float = 3600,
    by: str | None = None, min_rows: int = 10, limit: int = 100_000, top: int = 20,
) -> dict[str, Any]:  # fmt: skip
    """Quality by slice (monitoring/slices.py) over the answered predictions of the last
    `window_s` seconds (at most the newest `limit`) of `endpoint` (or every endpoint): the
    worst `top` slices of at least `min_rows` predictions first, each against the whole window.
    The estimate counts the versions with a calibration only."""
    if min_rows < 1 or top < 1:
        raise InvalidInput(f"min_rows and top must be at least 1, got {min_rows} and {top}")
    rows = services.predictions.window(workspace, endpoint, since_text(window_s), limit)
    deployed = _deployed(services, workspace, endpoint).get(endpoint) if endpoint else None
    if endpoint is not None and deployed is None and not rows:
        raise NotFound(
            f"no endpoint '{endpoint}' in workspace '{workspace}': nothing is deployed there"
            f" and it answered no predictions in the window"
        )
    calibrated = _calibrated(services, workspace, rows, deployed)
    found = slicing.group(
        rows, calibrated.versions, by, services.settings.low_light_brightness, min_rows
    )
    return {
        "workspace": workspace,
        "endpoint": endpoint,
        "window_s": window_s,
        "by": by,
        "min_rows": min_rows,
        "metric": calibrated.metric,
        "reference": calibrated.reference,
        "overall": found["overall"],
        "slices": slicing.worst(found["slices"], found["overall"], top, min_rows),
        "counted": len(found["slices"]),
        "left_out": found["left_out"],
    }


def embedding_drift(
    services: Services, workspace: str, endpoint: str, version_id: str, since: str
) -> dict[str, Any] | None:
    """The newest (at most LIVE_EMBEDDINGS) embeddings captured at `endpoint` from `version_id`
    since `since` against the version's reference embeddings, by kernel MMD with a permutation
    p-value (embeddings.mmd_test); drifted when the p-value is below
    `embedding_drift_alpha`. None when the version has no reference embeddings or fewer than
    MIN_LIVE live ones of its width were captured."""
    try:
        loaded = store.load(services.registry, version_id)
    except ValueError:  # a damaged reference blob: no test, and the rest of drift goes on
        log.exception("version %s: its reference embeddings cannot be read", version_id)
        return None
    reference = loaded[1] if loaded is not None else None
    if reference is None or len(reference) < 2:
        return None
    dims = reference.shape[1]
    blobs = services.predictions.embeddings(workspace, endpoint, version_id, since, LIVE_EMBEDDINGS)
    wide = [b for b in blobs if len(b) == 2 * dims]  # another width: not this version's vectors
    if len(wide) < MIN_LIVE:
        return None
    live = from_blob(b"".join(wide), dims)
    live = live[np.isfinite(live).all(axis=1)]
    reference = reference[np.isfinite(reference).all(axis=1)]
    if len(live) < MIN_LIVE or len(reference) < 2:
        return None
    alpha = services.settings.embedding_drift_alpha
    # Enough shuffles that a p-value below alpha can occur at all: the smallest is 1/(1+k).
    permutations = max(PERMUTATIONS, min(5000, math.ceil(2 / alpha))) if alpha > 0 else 200
    test_alpha = max(alpha, 2 / (permutations + 1))  # the test's own flag is not used
    result = mmd_test(reference, live, alpha=test_alpha, permutations=permutations)
    p_value = round(result.p_value, 6)
    return {
        "method": result.method,
        "statistic": round(result.statistic, 6),
        "p_value": p_value,
        "reference": result.reference,
        "live": result.live,
        "drifted": p_value < alpha,
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


def _calibrated(
    services: Services, workspace: str, rows: Sequence[dict[str, Any]], deployed: str | None
) -> Calibrated:
    """Which of the versions that answered `rows` (and the `deployed` one) have a calibration,
    and the deployed version's held-out score and gate metric."""
    ids = {r["model_version_id"] for r in rows} | {deployed}
    trusts = {vid: store.summary(services.registry, vid) for vid in ids if vid}
    versions = frozenset(vid for vid, trust in trusts.items() if trust is not None)
    if not versions:
        return Calibrated()
    reference = metric = None
    if deployed is not None:
        trust = trusts.get(deployed) or {}
        held_out = (trust.get("metrics") or {}).get("heldout_accuracy")
        reference = round(float(held_out), 4) if held_out is not None else None
        metric = _task(services, workspace, _version(services, deployed)).gate_metric
    return Calibrated(versions, reference, metric)


def _deployed(services: Services, workspace: str, endpoint: str | None) -> dict[str, str]:
    """Endpoint → the version it serves, for the workspace's deployments (or only `endpoint`)."""
    return {
        d["endpoint"]: d["model_version_id"]
        for d in services.deployments.list(workspace)
        if endpoint is None or d["endpoint"] == endpoint
    }
