"""Alert rules: thresholds from settings, evaluated per deployed endpoint over the recent window.

A rule's state lives in the `alerts` table; only a change of state writes an event
(`alert_firing`, then `alert_resolved`), so the timeline shows each incident once and the
scheduler can react to a firing alert (a retrain on drift or bad ratings).

A rule's value is compared with its threshold by `breached(value, threshold)`: most fire above
the limit (`operator.gt`); `mean_rating`, `disk_free_mb` and `embedding_drift` (whose value is a
p-value, its threshold the significance level) fire below it (`operator.lt`). A value of None
is too little data to judge, and the rule keeps its state.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from appliance.disk import free_bytes
from appliance.events import record_event
from appliance.monitoring import report
from appliance.registry import Rows, utcnow
from appliance.services import Services
from appliance.settings import Settings


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    threshold: Callable[[Settings], float]
    breached: Callable[[float, float], bool]
    value: Callable[[dict[str, Any], dict[str, Any] | None], float | None]


def _drift_score(summary: dict[str, Any], drift: dict[str, Any] | None) -> float | None:
    """The largest PSI among features with enough samples to judge (None below that)."""
    if not drift:
        return None
    judged = [f["psi"] for f in drift["features"] if f["samples"] >= drift["min_samples"]]
    return max(judged) if judged else None


def _quality_drop(summary: dict[str, Any], drift: dict[str, Any] | None) -> float | None:
    """How far the label-free quality estimate is below the deployed version's held-out score;
    None without a held-out score or with fewer calibrated predictions than the drift report's
    `min_samples` (drift_min_samples)."""
    quality = summary["estimated_quality"]
    if not quality or quality["reference"] is None or drift is None:
        return None
    if quality["predictions"] < drift["min_samples"]:
        return None
    return round(quality["reference"] - quality["value"], 4)


def _embedding_p_value(summary: dict[str, Any], drift: dict[str, Any] | None) -> float | None:
    """The embedding test's p-value; None where it did not run (no reference embeddings, too
    few live ones)."""
    test = drift.get("embedding") if drift else None
    return test["p_value"] if test else None


RULES = (
    Rule(
        "p95_latency_ms", "p95 latency above the limit",
        lambda s: s.alert_p95_latency_ms, operator.gt, lambda s, d: s["latency_ms"]["p95"],
    ),
    Rule(
        "error_rate", "share of failed predictions above the limit",
        lambda s: s.alert_error_rate, operator.gt, lambda s, d: s["error_rate"],
    ),
    Rule(
        "drift_psi", "an input feature drifted from the training data",
        lambda s: s.drift_psi_threshold, operator.ge, _drift_score,
    ),
    Rule(
        "mean_rating", "mean user rating below the limit",
        lambda s: s.alert_min_rating, operator.lt,
        lambda s, d: s["mean_rating"] if s["ratings"] >= 5 else None,
    ),
    Rule(
        "low_light_rate", "share of low_light warnings above the limit",
        lambda s: s.alert_low_light_rate, operator.gt, lambda s, d: s["low_light_rate"],
    ),
    Rule(
        "estimated_quality", "estimated quality fell below the held-out score by the limit",
        lambda s: s.alert_quality_drop, operator.gt, _quality_drop,
    ),
    Rule(
        "embedding_drift", "the model's embeddings of recent inputs drifted from its training data",
        lambda s: s.embedding_drift_alpha, operator.lt, _embedding_p_value,
    ),
    Rule(
        "disk_free_mb", "free space on the disk holding the home below the limit",
        lambda s: s.alert_min_free_disk_mb, operator.lt, lambda s, d: s["disk_free_mb"],
    ),
)  # fmt: skip
ALWAYS_JUDGED = {"disk_free_mb"}
"""Rules that need no traffic: judged on every round, however few predictions there were."""


@dataclass(frozen=True)
class Transition:
    workspace: str
    endpoint: str
    rule: str
    state: str  # "firing" or "ok"
    value: float | None
    threshold: float


DriftCallback = Callable[[str, list[dict[str, Any]]], None]


def evaluate(services: Services, on_drift: DriftCallback | None = None) -> list[Transition]:
    """Evaluate every rule on every deployed endpoint; record and return the state changes.
    `on_drift(endpoint, features)` receives each endpoint's drift scores as they are computed."""
    settings = services.settings
    window, sample = settings.drift_window_s, settings.monitor_sample_rows
    transitions = []
    free_mb = round(free_bytes(settings.home) / 2**20, 1)
    for deployment in services.deployments.list():
        workspace, endpoint = deployment["workspace"], deployment["endpoint"]
        summary = report.summary(services, workspace, endpoint, window, sample)["endpoints"][0]
        summary["disk_free_mb"] = free_mb
        if summary["predictions"] < settings.drift_min_samples:
            values: dict[str, float | None] = {
                rule.name: rule.value(summary, None) if rule.name in ALWAYS_JUDGED else None
                for rule in RULES
            }
            drift = None
        else:
            # One drift report per endpoint and round: its embedding test (the costly part)
            # serves the embedding_drift rule, the features drift_psi and /metrics.
            drift = report.drift(services, workspace, endpoint, window, sample)
            if on_drift is not None:
                on_drift(endpoint, drift["features"])
            values = {rule.name: rule.value(summary, drift) for rule in RULES}
        for rule in RULES:
            threshold = rule.threshold(settings)
            value = values[rule.name]
            if value is None:  # too little data to judge: the rule keeps its state
                continue
            state = "firing" if rule.breached(value, threshold) else "ok"
            extra = _detail(rule.name, summary, drift)
            if _set_state(services, deployment, rule, state, value, threshold, extra):
                transitions.append(
                    Transition(workspace, endpoint, rule.name, state, value, threshold)
                )
    return transitions


def _detail(rule: str, summary: dict[str, Any], drift: dict[str, Any] | None) -> dict[str, Any]:
    """What an event of `rule` records beside its value and threshold."""
    if rule == "drift_psi" and drift:
        return {"drifted": drift["drifted"]}
    if rule == "embedding_drift" and drift and drift["embedding"]:
        test = drift["embedding"]
        return {"method": test["method"], "statistic": test["statistic"],
                "reference_rows": test["reference"], "live_rows": test["live"]}  # fmt: skip
    if rule == "estimated_quality" and summary["estimated_quality"]:
        quality = summary["estimated_quality"]
        return {"estimate": quality["value"], "low": quality["low"], "high": quality["high"],
                "reference": quality["reference"], "metric": quality["metric"]}  # fmt: skip
    return {}


def _set_state(
    services: Services,
    deployment: dict[str, Any],
    rule: Rule,
    state: str,
    value: float | None,
    threshold: float,
    extra: dict[str, Any],
) -> bool:
    """Store the rule's state; True (and an event) when it changed."""

    def write(db: sqlite_utils.Database) -> bool:
        key = [deployment["workspace_id"], deployment["endpoint"], rule.name]
        current = db.execute(
            "SELECT state FROM alerts WHERE workspace_id = ? AND endpoint = ? AND rule = ?", key
        ).fetchone()
        now = utcnow()
        changed = (current[0] if current else "ok") != state
        if current is None or changed:
            db.execute(
                "INSERT OR REPLACE INTO alerts (workspace_id, endpoint, rule, state, value,"
                " threshold, since, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [*key, state, value, threshold, now, now],
            )
        else:
            db.execute(
                "UPDATE alerts SET value = ?, threshold = ?, updated_at = ?"
                " WHERE workspace_id = ? AND endpoint = ? AND rule = ?",
                [value, threshold, now, *key],
            )
        if changed:
            record_event(
                db, deployment["workspace_id"],
                "alert_firing" if state == "firing" else "alert_resolved",
                deployment["endpoint"], model_version_id=deployment["model_version_id"],
                deployment_id=deployment["id"], rule=rule.name,
                description=rule.description, value=value, threshold=threshold, **extra,
            )  # fmt: skip
        return changed

    return services.registry.write(write)


def current(services: Services, workspace: str, firing_only: bool = False) -> Rows:
    """Each rule's state per endpoint of the workspace (only firing ones with `firing_only`)."""
    ws = services.workspaces.get(workspace)
    sql = "SELECT endpoint, rule, state, value, threshold, since, updated_at FROM alerts"
    sql += " WHERE workspace_id = ?" + (" AND state = 'firing'" if firing_only else "")
    return services.registry.query(sql + " ORDER BY endpoint, rule", (ws["id"],))


def history(services: Services, workspace: str, limit: int = 50) -> Rows:
    """Alert events, newest first."""
    ws = services.workspaces.get(workspace)
    return [
        e
        for e in services.events.list(ws["id"], limit=1000)
        if e["kind"] in ("alert_firing", "alert_resolved")
    ][:limit]
