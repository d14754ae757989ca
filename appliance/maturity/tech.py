"""The Tech indicators: what the workspace's records show its tooling does (versioning,
tracking, the gate, the closed retraining loop, monitoring, rollback, serving)."""

from __future__ import annotations

from typing import Any

from appliance.maturity.observed import (
    NO,
    PARTLY,
    TECH,
    YES,
    Indicator,
    Observed,
    by_whom,
    counted,
    plural,
)


def versioned_data_and_models(o: Observed) -> Indicator:
    data = o.one(
        "SELECT COUNT(DISTINCT d.id) AS datasets, COUNT(dv.digest) AS versions FROM datasets d"
        " LEFT JOIN dataset_versions dv ON dv.dataset_id = d.id WHERE d.workspace_id = ?",
        o.ws_id,
    )
    models = o.one(
        "SELECT COUNT(*) AS versions, COALESCE(SUM(v.run_id IS NOT NULL"
        " AND v.dataset_digest IS NOT NULL), 0) AS with_lineage FROM model_versions v"
        " JOIN models m ON m.id = v.model_id WHERE m.workspace_id = ?",
        o.ws_id,
    )
    figures = {
        "datasets": data["datasets"], "dataset_versions": data["versions"],
        "model_versions": models["versions"], "with_lineage": models["with_lineage"],
    }  # fmt: skip
    data_text = (
        f"{plural(data['versions'], 'dataset version')} of {plural(data['datasets'], 'dataset')}"
    )
    model_text = (
        f"{plural(models['versions'], 'model version')}, {models['with_lineage']} with lineage"
        " (training run and dataset version)"
    )
    if data["versions"] and models["with_lineage"]:
        return _tech(
            "versioned", "Versioned data and models", YES, f"{data_text}; {model_text}", figures
        )
    if data["versions"] or models["versions"]:
        missing = (
            "no dataset version" if not data["versions"]
            else "no model version" if not models["versions"]
            else "no model version records the run and dataset version it came from"
        )  # fmt: skip
        return _tech(
            "versioned", "Versioned data and models", PARTLY,
            f"{data_text}; {model_text}; {missing}", figures,
        )  # fmt: skip
    return _tech(
        "versioned", "Versioned data and models", NO,
        "no dataset version and no model version: add a dataset (`appliance dataset add`) and"
        " train a model from it (`appliance run start`)", figures,
    )  # fmt: skip


def experiment_tracking(o: Observed) -> Indicator:
    rows = o.query(
        "SELECT r.status, r.params != '{}' AS has_params, r.seed IS NOT NULL AS has_seed,"
        " r.code_hash IS NOT NULL AS has_code,"
        " EXISTS (SELECT 1 FROM run_metrics k WHERE k.run_id = r.id) AS has_metrics"
        " FROM runs r WHERE r.workspace_id = ? AND r.created_at >= ? AND r.created_at <= ?",
        o.ws_id, o.since_text, o.until_text,
    )  # fmt: skip
    tracked = sum(1 for r in rows if r["has_params"] and r["has_seed"] and r["has_metrics"])
    figures = {
        "runs": len(rows), "tracked": tracked,
        "with_params": sum(r["has_params"] for r in rows),
        "with_seed": sum(r["has_seed"] for r in rows),
        "with_metrics": sum(r["has_metrics"] for r in rows),
        "with_code_hash": sum(r["has_code"] for r in rows),
    }  # fmt: skip
    name = "Experiment tracking (runs with params, metrics, seed)"
    if not rows:
        return _tech(
            "tracking", name, NO,
            f"no training run in the last {o.window}: runs started with `appliance run start`"
            " (or logged from the Python client) record their params, seed and metrics", figures,
        )  # fmt: skip
    text = (
        f"{plural(len(rows), 'run')} in {o.window}, {tracked} with params, seed and metrics"
        f" ({figures['with_code_hash']} with the recipe's code hash)"
    )
    return _tech("tracking", name, YES if tracked else PARTLY, text, figures)


def evaluation_gate(o: Observed) -> Indicator:
    decisions = _events(o, "promoted", "promotion_refused")
    judged = [e for e in decisions if not e["detail"].get("forced")]
    promoted = sum(1 for e in judged if e["kind"] == "promoted")
    metrics = sorted({str(e["detail"]["metric"]) for e in judged if e["detail"].get("metric")})
    gated_jobs = [j["name"] for j in _jobs(o, "retrain") if j["params"].get("gate", "on") == "on"]
    promoters = counted(o.dora, "promotions")  # forced ones too: a person answers for those
    figures = {
        "decisions": len(judged), "promoted": promoted, "refused": len(judged) - promoted,
        "forced": len(decisions) - len(judged), "metrics": metrics, "gated_jobs": gated_jobs,
        "promoted_by": promoters,
    }  # fmt: skip
    name = "Automated evaluation gate"
    who = f"; promoted by {by_whom(promoters)}" if promoters else ""
    if judged:
        on = f", on {', '.join(metrics)}" if metrics else ""
        text = (
            f"the gate judged {plural(len(judged), 'candidate')} in {o.window}"
            f" ({promoted} promoted, {len(judged) - promoted} refused){on}{who}"
        )
        return _tech("gate", name, YES, text, figures)
    if gated_jobs or decisions:
        text = (
            f"only forced promotions in {o.window} (the gate was skipped){who}" if decisions
            else f"retrain job {', '.join(gated_jobs)} gates its versions,"
            f" but judged none in {o.window}"
        )  # fmt: skip
        return _tech("gate", name, PARTLY, text, figures)
    return _tech(
        "gate", name, NO,
        f"no version was judged by the gate in {o.window}: promote with `appliance model promote`"
        " or let a retrain job gate its versions", figures,
    )  # fmt: skip


def ci_cd(o: Observed) -> Indicator:
    watches = _jobs(o, "dataset_watch")
    retrains = {j["name"]: j for j in _jobs(o, "retrain")}
    name = "CI/CD for model, data and code: dataset watch → retrain → gate → auto-deploy"
    if not watches and not retrains:
        return _tech(
            "cicd", name, NO,
            "no dataset watch and no retrain job: add them with `appliance job add`"
            " so that a changed dataset retrains, gates and deploys on its own",
            {"watch": None, "retrain": None, "missing": ["no dataset watch", "no retrain job"]},
        )  # fmt: skip
    chains: list[tuple[dict[str, Any] | None, dict[str, Any] | None]] = [
        (w, retrains.get(w["params"].get("retrain", ""))) for w in watches
    ] or [(None, r) for r in retrains.values()]
    # The most complete chain speaks for the workspace: whole and recently run, else whole.
    scored = sorted(
        (_chain(o, watch, retrain) for watch, retrain in chains),
        key=lambda c: (not c[1]["missing"], c[1]["ran_in_window"]),
        reverse=True,
    )
    chain, figures = scored[0]
    if figures["missing"]:
        return _tech("cicd", name, PARTLY, f"{chain}: {'; '.join(figures['missing'])}", figures)
    when = f"last ran {o.ago(figures['last_ran_at'])}"
    if figures["last_deployed_at"]:
        when += f", last deployed {o.ago(figures['last_deployed_at'])}"
    if not figures["ran_in_window"]:
        return _tech("cicd", name, PARTLY, f"{chain}: {when}, not in the last {o.window}", figures)
    return _tech("cicd", name, YES, f"{chain}: {when}", figures)


def _chain(
    o: Observed, watch: dict[str, Any] | None, retrain: dict[str, Any] | None
) -> tuple[str, dict[str, Any]]:
    """A watch → retrain chain as a sentence, and its figures: what it lacks, when it ran."""
    last = _last_run(o, watch["id"]) if watch else None
    endpoint = retrain["params"].get("endpoint") if retrain else None
    chain = " → ".join(
        [f"dataset watch {watch['name']}" if watch else "no dataset watch",
         f"retrain {retrain['name']}" if retrain else "no retrain job",
         "gate", f"auto-deploy to {endpoint or '(no endpoint)'}"]
    )  # fmt: skip
    return chain, {
        "watch": watch["name"] if watch else None,
        "retrain": retrain["name"] if retrain else None,
        "missing": _chain_gaps(watch, retrain),
        "last_ran_at": last["started_at"] if last else None,
        "ran_in_window": bool(last and last["started_at"] >= o.since_text),
        "last_deployed_at": _last_deploy(o, retrain["id"]) if retrain else None,
    }


def monitoring(o: Observed) -> Indicator:
    captured = o.one(
        "SELECT COUNT(*) AS n FROM predictions WHERE workspace_id = ? AND created_at >= ?"
        " AND created_at <= ?",
        o.ws_id, o.since_text, o.until_text,
    )["n"]  # fmt: skip
    rules = o.query(
        "SELECT rule FROM alerts WHERE workspace_id = ? AND updated_at >= ?",
        o.ws_id, o.since_text,
    )  # fmt: skip
    judged = sorted({r["rule"] for r in rules})
    drift = [r for r in judged if r in ("drift_psi", "embedding_drift")]
    fired = len(_events(o, "alert_firing"))
    figures = {"predictions": captured, "rules_judged": judged, "alerts_fired": fired}
    name = "Monitoring of inputs and outputs (drift, alerts)"
    if not captured:
        return _tech(
            "monitoring", name, NO,
            f"no prediction captured in the last {o.window}: deploy a version and serve it"
            " (`appliance serve`) so inputs and answers are captured and watched", figures,
        )  # fmt: skip
    text = (
        f"{plural(captured, 'prediction')} captured in {o.window};"
        f" {plural(len(judged), 'alert rule')} judged ({', '.join(judged) or 'none'}),"
        f" {fired} fired"
    )
    if drift:
        return _tech("monitoring", name, YES, text, figures)
    return _tech(
        "monitoring", name, PARTLY, f"{text}; drift was never judged (too little traffic?)", figures
    )


def automated_rollback(o: Observed) -> Indicator:
    watched = [
        j for j in _jobs(o, "retrain")
        if j["enabled"] and float(j["params"].get("watch_s") or 0) > 0
        and j["params"].get("endpoint")
    ]  # fmt: skip
    failed_watches = _events(o, "watch_failed")
    rollbacks = _events(o, "rolled_back")
    figures = {
        "watching_jobs": [j["name"] for j in watched], "watch_failures": len(failed_watches),
        "rollbacks": len(rollbacks),
    }  # fmt: skip
    name = "Automated rollback"
    automatic = f"{plural(len(failed_watches), 'automatic rollback')} in {o.window}"
    if watched:
        job = watched[0]
        text = (
            f"retrain {job['name']} watches each deploy for {float(job['params']['watch_s']):g} s"
            f" and rolls back one that does worse; {automatic}"
        )
        return _tech("rollback", name, YES, text, figures)
    if rollbacks or failed_watches:
        text = (
            f"{plural(len(rollbacks), 'rollback')} in {o.window}, but no retrain job watches its"
            " deploys (`appliance job add --watch`) to roll back on its own"
        )
        return _tech("rollback", name, PARTLY, text, figures)
    return _tech(
        "rollback", name, NO,
        "no retrain job watches its deploys and nothing was rolled back: give a retrain job"
        " an --endpoint and a --watch period (`appliance job add`)", figures,
    )  # fmt: skip


def serving(o: Observed) -> Indicator:
    rows = o.query(
        "SELECT d.endpoint, d.quantization, r.seed IS NOT NULL AND r.code_hash IS NOT NULL"
        " AND v.dataset_digest IS NOT NULL AS reproducible FROM deployments d"
        " JOIN model_versions v ON v.id = d.model_version_id LEFT JOIN runs r ON r.id = v.run_id"
        " WHERE d.workspace_id = ? AND d.status = 'active' ORDER BY d.endpoint",
        o.ws_id,
    )
    quantized = [r["endpoint"] for r in rows if r["quantization"] not in ("", "none")]
    reproducible = [r["endpoint"] for r in rows if r["reproducible"]]
    figures = {
        "deployments": len(rows), "quantized": quantized, "reproducible": reproducible,
        "quantization": {r["endpoint"]: r["quantization"] for r in rows},
    }  # fmt: skip
    name = "Quantized, reproducible serving"
    if not rows:
        return _tech(
            "serving", name, NO,
            "nothing deployed: `appliance deploy create` serves a version, quantized with"
            " --quantization int8", figures,
        )  # fmt: skip
    served = ", ".join(f"{r['endpoint']} {r['quantization']}" for r in rows)
    text = (
        f"{plural(len(rows), 'deployment')}: {len(quantized)} quantized ({served}),"
        f" {len(reproducible)} serving a version whose run recorded seed, code hash and data"
    )
    verdict = YES if quantized and len(reproducible) == len(rows) else PARTLY
    return _tech("serving", name, verdict, text, figures)


# -- shared reads ------------------------------------------------------------------------------


def _tech(id: str, name: str, verdict: str, evidence: str, figures: dict[str, Any]) -> Indicator:
    return Indicator(id, TECH, name, verdict, evidence, figures)


def _events(o: Observed, *kinds: str) -> list[dict[str, Any]]:
    return [
        e for e in o.events
        if e["kind"] in kinds and o.since_text <= e["created_at"] <= o.until_text
    ]  # fmt: skip


def _jobs(o: Observed, kind: str) -> list[dict[str, Any]]:
    return [j for j in o.services.jobs.list(o.workspace["name"]) if j["kind"] == kind]


def _chain_gaps(watch: dict[str, Any] | None, retrain: dict[str, Any] | None) -> list[str]:
    """What keeps a dataset watch and its retrain job from deploying a change on their own."""
    gaps = []
    if watch is None:
        gaps.append("no dataset watch triggers it")
    elif not watch["enabled"]:
        gaps.append(f"dataset watch {watch['name']} is paused")
    if retrain is None:
        gaps.append("the retrain job it names does not exist" if watch else "no retrain job")
        return gaps
    params = retrain["params"]
    if not retrain["enabled"]:
        gaps.append(f"retrain {retrain['name']} is paused")
    if params.get("gate", "on") != "on":
        gaps.append("its gate is off")
    if not params.get("endpoint"):
        gaps.append("it deploys nowhere (no endpoint)")
    elif params.get("policy", "auto") != "auto":
        gaps.append("it deploys only after approval")
    return gaps


def _last_run(o: Observed, job_id: str) -> dict[str, Any] | None:
    rows = o.query(
        "SELECT * FROM job_runs WHERE job_id = ? AND started_at <= ?"
        " ORDER BY started_at DESC LIMIT 1",
        job_id, o.until_text,
    )  # fmt: skip
    return rows[0] if rows else None


def _last_deploy(o: Observed, job_id: str) -> str | None:
    rows = o.query(
        "SELECT started_at FROM job_runs WHERE job_id = ? AND started_at <= ?"
        " AND json_extract(detail, '$.deployed') = 1 ORDER BY started_at DESC LIMIT 1",
        job_id, o.until_text,
    )  # fmt: skip
    return rows[0]["started_at"] if rows else None
