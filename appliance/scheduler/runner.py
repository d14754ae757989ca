"""Running one job to its end, in the calling thread: the closed loop for `retrain` (train →
evaluate → gate against production → deploy, or wait for approval → watch → roll back when the
new version does worse in service), and the other kinds (dataset watch, alert trigger, batch
prediction, housekeeping, backup). The scheduler calls this on a worker thread; the CLI calls it
directly when no server runs."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from appliance.errors import ApplianceError, Conflict, InvalidInput, NotFound
from appliance.events import record_event
from appliance.models.promotion import GateRefused, promote
from appliance.monitoring.predictions import since_text
from appliance.registry import utcnow
from appliance.runs.launcher import start_run
from appliance.scheduler.batch import batch_files
from appliance.services import Services
from appliance.serving.options import DeployOptions
from appliance.serving.service import Serving
from appliance.tasks.keywords import parse_keywords

PRODUCTION = "production"

Trigger = Callable[[dict[str, Any], str], None]  # (job, cause): ask for another job to run
WATCH_MIN_PREDICTIONS = 5
WATCH_POLL_S = 0.5


@dataclass
class JobContext:
    services: Services
    job: dict[str, Any]
    job_run_id: str
    cause: str
    serving: Serving | None
    trigger: Trigger
    should_stop: Callable[[], bool]


@dataclass
class Outcome:
    status: str
    run_id: str | None = None
    detail: dict[str, Any] | None = None


def run_job(
    services: Services,
    job: dict[str, Any],
    cause: str,
    serving: Serving | None = None,
    trigger: Trigger | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_begin: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """Run `job` once, record its job_runs row, and return that row. `on_begin` receives the
    job_run id as soon as the row exists."""
    job_run_id = services.jobs.begin(job["id"], cause)
    if on_begin is not None:
        on_begin(job_run_id)

    def inline(other: dict[str, Any], why: str) -> None:
        run_job(services, other, why, serving)

    ctx = JobContext(services, job, job_run_id, cause, serving, trigger or inline, should_stop)
    try:
        outcome = KINDS[job["kind"]](ctx)
    except Exception as exc:
        message = str(exc) if isinstance(exc, ApplianceError) else f"{type(exc).__name__}: {exc}"
        services.jobs.finish(job_run_id, "failed", error=message)
        _event(services, job, "job_failed", job["name"], cause=cause, error=message)
    else:
        services.jobs.finish(job_run_id, outcome.status, outcome.run_id, **(outcome.detail or {}))
    return _job_run(services, job_run_id)


def approve(services: Services, job_run_id: str, serving: Serving | None = None) -> dict[str, Any]:
    """Deploy the version a retrain left awaiting approval, then watch it like `auto` does."""
    row = _job_run(services, job_run_id)
    if row["status"] != "awaiting_approval":
        raise Conflict(f"job run {job_run_id} is {row['status']}, not awaiting approval")
    job = services.jobs.by_id(row["job_id"])
    detail = dict(row["detail"])
    # Who approved it is the actor of this event (DORA and the maturity report name them).
    _event(
        services, job, "deploy_approved", job["params"]["endpoint"], version=detail["version_ref"]
    )
    ctx = JobContext(
        services, job, job_run_id, "approved", serving, lambda j, c: None, lambda: False
    )
    detail.update(_deploy_and_watch(ctx, detail["version_ref"]))
    status = "failed" if detail.get("rolled_back") else "succeeded"
    services.jobs.finish(job_run_id, status, row["run_id"], **detail)
    return _job_run(services, job_run_id)


# -- retrain: the closed loop -----------------------------------------------------------------


def _retrain(ctx: JobContext) -> Outcome:
    services, job = ctx.services, ctx.job
    params, workspace, model = job["params"], job["workspace"], job["target"]
    dataset = services.datasets.get(workspace, params["dataset"])
    execution = start_run(
        services, workspace, params["recipe"], f"{dataset['name']}@{dataset['digest']}",
        dict(params.get("train", {})), model_name=model, die_with_parent=ctx.serving is not None,
        executor=params.get("executor", "local"), ray_address=params.get("ray_address"),
    )  # fmt: skip
    services.registry.write(
        lambda db: db.execute(
            "UPDATE runs SET job_id = ?, cause = ? WHERE id = ?",
            [job["id"], ctx.cause, execution.run_id],
        ).close()
    )
    run = execution.wait()
    detail: dict[str, Any] = {"dataset": f"{dataset['name']}@{dataset['version']}"}
    if run["status"] != "succeeded":
        return Outcome("failed", run["id"], {**detail, "error": run["error"]})
    version = services.models.by_run(run["id"])
    assert version is not None  # a succeeded run has registered its version
    ref = f"{version['name']}@{version['version']}"
    detail.update(version_ref=ref, version_id=version["id"], metrics=version["metrics"])
    holder = services.models.aliases(workspace, version["name"]).get(PRODUCTION)
    if params.get("gate", "on") == "off":
        # An experiment: deploy whatever trained, without promoting it; the watch judges it.
        detail["gate"] = "off: not promoted, judged by the post-deploy watch"
    else:
        try:
            gate = promote(services, workspace, ref)
        except GateRefused as refused:
            detail.update(gate=str(refused), deployed=False)
            return Outcome("succeeded", run["id"], detail)
        detail["gate"] = gate.summary()
    endpoint = params.get("endpoint")
    if not endpoint:
        return Outcome("succeeded", run["id"], {**detail, "deployed": False})
    if params.get("policy", "auto") == "approve":
        _event(services, job, "deploy_pending", endpoint, version=ref)
        return Outcome("awaiting_approval", run["id"], {**detail, "endpoint": endpoint})
    detail.update(_deploy_and_watch(ctx, ref))
    if detail.get("rolled_back") and params.get("gate", "on") != "off" and holder is not None:
        # The gate moved production to this version; the watch took it out of service, so
        # production goes back to the version it named before and serves again.
        services.models.set_alias(workspace, f"{version['name']}@{holder}", PRODUCTION)
        detail["production_restored"] = f"{version['name']}@{holder}"
    return Outcome("failed" if detail.get("rolled_back") else "succeeded", run["id"], detail)


def _deploy_and_watch(ctx: JobContext, ref: str) -> dict[str, Any]:
    """Deploy `ref` at the job's endpoint, then watch it; roll back when it does worse."""
    services, job = ctx.services, ctx.job
    workspace, endpoint = job["workspace"], job["params"]["endpoint"]
    options = _options(services, workspace, endpoint, job["params"])
    serving = ctx.serving or Serving(services)
    try:
        before = since_text(0)
        deployed = serving.deploy(workspace, endpoint, ref, options)
        detail: dict[str, Any] = {"deployed": True, "endpoint": endpoint}
        watch_s = float(job["params"].get("watch_s", 0))
        if watch_s <= 0 or ctx.serving is None:
            return detail  # nothing serves traffic to watch without a server
        verdict = _watch(ctx, workspace, endpoint, deployed["model_version_id"], before, watch_s)
        detail["watch"] = verdict
        if verdict["failed"]:
            _event(services, job, "watch_failed", endpoint, version=ref, **verdict)
            serving.rollback(workspace, endpoint)
            detail["rolled_back"] = True
        return detail
    finally:
        if ctx.serving is None:
            serving.close()


def _watch(
    ctx: JobContext, workspace: str, endpoint: str, version_id: str, since: str, watch_s: float
) -> dict[str, Any]:
    """Compare the new version's live traffic with the previous version's, for `watch_s`
    seconds or until it clearly fails: error rate, p95 latency and mean confidence. Only the
    new version's answers count: requests the old one finished during the swap are not its."""
    from appliance.monitoring.report import summarize

    services = ctx.services
    settings = services.settings
    baseline_rows = services.predictions.window(workspace, endpoint, since_text(3600))
    baseline_rows = [r for r in baseline_rows if r["created_at"] < since]
    baseline = summarize(baseline_rows, 3600)
    deadline = time.monotonic() + watch_s
    current: dict[str, Any] = {}
    reasons: list[str] = []
    while time.monotonic() < deadline and not ctx.should_stop():
        time.sleep(WATCH_POLL_S)
        rows = services.predictions.window(workspace, endpoint, since)
        current = summarize([r for r in rows if r["model_version_id"] == version_id], watch_s)
        reasons = _worse(current, baseline, settings.alert_error_rate)
        if reasons and current["predictions"] >= WATCH_MIN_PREDICTIONS:
            break
    failed = bool(reasons) and current.get("predictions", 0) >= WATCH_MIN_PREDICTIONS
    return {
        "failed": failed,
        "reasons": reasons if failed else [],
        "predictions": current.get("predictions", 0),
        "error_rate": current.get("error_rate"),
        "baseline_error_rate": baseline["error_rate"],
    }


def _worse(current: dict[str, Any], baseline: dict[str, Any], error_limit: float) -> list[str]:
    reasons = []
    base_errors = baseline["error_rate"] or 0.0
    if (current["error_rate"] or 0.0) > max(error_limit, 2 * base_errors):
        reasons.append(f"error rate {current['error_rate']:.0%} (before: {base_errors:.0%})")
    p95, base_p95 = current["latency_ms"]["p95"], baseline["latency_ms"]["p95"]
    if p95 is not None and base_p95 is not None and p95 > 2 * base_p95 + 50:
        reasons.append(f"p95 latency {p95:.0f} ms (before: {base_p95:.0f} ms)")
    conf, base_conf = current["mean_confidence"], baseline["mean_confidence"]
    # Confidence fell by 0.15, or by 30% (what a drop means for a model that was never sure).
    if conf is not None and base_conf is not None and conf < max(base_conf - 0.15, 0.7 * base_conf):
        reasons.append(f"mean confidence {conf:.2f} (before: {base_conf:.2f})")
    return reasons


def _options(
    services: Services, workspace: str, endpoint: str, params: dict[str, Any]
) -> DeployOptions:
    """The endpoint's current runtime options, overridden by the job's params."""
    try:
        current = services.deployments.get(workspace, endpoint)
        base = DeployOptions(**{k: current[k] for k in DeployOptions.__dataclass_fields__})
    except ApplianceError:
        base = DeployOptions()
    return replace(
        base,
        quantization=params.get("quantization", base.quantization),
        device=params.get("device", base.device),
    )


# -- the other kinds --------------------------------------------------------------------------


def _dataset_watch(ctx: JobContext) -> Outcome:
    """A new version when the source folder's content changed (with the reviewed rows of the
    latest version that the folder lacks: review/carry.py), then its retrain job."""
    services, job = ctx.services, ctx.job
    source = Path(job["params"]["source"])
    if not source.is_dir():
        raise InvalidInput(f"the watched folder {source} does not exist")
    # A cheap look first (names, sizes, modification times); hash the content only on a change.
    fingerprint = _fingerprint(source)
    looks = [r for r in services.jobs.runs(job["id"], 20) if "fingerprint" in r["detail"]]
    if looks and looks[0]["detail"]["fingerprint"] == fingerprint:
        return Outcome("skipped", detail={"fingerprint": fingerprint, "changed": False})
    from appliance.review.carry import with_reviewed_rows

    with with_reviewed_rows(services, job["workspace"], job["target"], source) as folder:
        added = services.datasets.add(job["workspace"], job["target"], folder)
    version = added.version
    ref = f"{version['name']}@{version['version']}"
    if not added.created:
        return Outcome(
            "skipped", detail={"dataset": ref, "changed": False, "fingerprint": fingerprint}
        )
    retrain = services.jobs.get(job["workspace"], job["params"]["retrain"])
    ctx.trigger(retrain, f"dataset:{ref}")
    return Outcome(
        "succeeded", detail={"dataset": ref, "changed": True, "triggered": retrain["name"]}
    )


def _fingerprint(folder: Path) -> str:
    import hashlib

    listing = sorted(
        (str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file()
    )
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()[:16]


def _alert_trigger(ctx: JobContext) -> Outcome:
    """A retrain when a watched alert started firing since the last look."""
    services, job = ctx.services, ctx.job
    previous = [r for r in services.jobs.runs(job["id"], 50) if "last_event" in r["detail"]]
    last_seen = previous[0]["detail"]["last_event"] if previous else _latest_event(services, job)
    rules = set(job["params"].get("rules", []))
    ws = services.workspaces.get(job["workspace"])
    rows = services.registry.query(
        "SELECT id, detail FROM events WHERE workspace_id = ? AND kind = 'alert_firing'"
        " AND subject = ? AND id > ? ORDER BY id",
        (ws["id"], job["target"], last_seen),
    )
    firing = [r for r in rows if not rules or json.loads(r["detail"])["rule"] in rules]
    newest = rows[-1]["id"] if rows else last_seen
    if not firing:
        return Outcome("skipped", detail={"last_event": newest})
    rule = json.loads(firing[-1]["detail"])["rule"]
    retrain = services.jobs.get(job["workspace"], job["params"]["retrain"])
    ctx.trigger(retrain, f"alert:{job['target']}/{rule}")
    return Outcome(
        "succeeded", detail={"last_event": newest, "rule": rule, "triggered": retrain["name"]}
    )


def _latest_event(services: Services, job: dict[str, Any]) -> int:
    """Where an alert trigger starts looking: alerts before the job existed do not count."""
    rows = services.registry.query(
        "SELECT COALESCE(MAX(id), 0) AS id FROM events WHERE created_at < ?", (job["created_at"],)
    )
    return int(rows[0]["id"])


def _batch_predict(ctx: JobContext) -> Outcome:
    """Answer every file of a folder (a photo, for image-to-text) into a JSONL file, with the
    endpoint's deployed model and its task, each with the keywords its metadata.jsonl row gives
    it (batch.py); one small batch at a time, so online requests keep their place in the
    queue."""
    services, job = ctx.services, ctx.job
    source, output = Path(job["params"]["source"]), Path(job["params"]["output"])
    files = batch_files(source)
    serving = ctx.serving or Serving(services)
    workspace, endpoint = job["workspace"], job["target"]
    try:
        if ctx.serving is None:  # no server: load the deployed version here, for this batch only
            row = {d["endpoint"]: d for d in services.deployments.list(workspace)}.get(endpoint)
            if row is None:
                raise NotFound(f"no deployment '{endpoint}' in workspace '{workspace}'")
            version = services.models.get(workspace, f"{row['model']}@{row['version']}")
            options = _options(services, workspace, endpoint, {})
            serving.pool.deploy(workspace, endpoint, version, options)
        task = serving.task_of(endpoint)
        output.mkdir(parents=True, exist_ok=True)
        target = output / f"{job['name']}-{utcnow().replace(':', '')}.jsonl"
        partial = target.with_suffix(".partial")
        count = failures = 0
        with partial.open("w") as out:
            for start in range(0, len(files), 8):
                chunk, inputs = files[start : start + 8], []
                for file in chunk:
                    try:
                        if file.problem is not None:
                            raise InvalidInput(file.problem)
                        given = {"keywords": file.keywords} if file.keywords else {}
                        raw = task.from_raw(file.path.read_bytes(), given)
                        inputs.append((file.path, task.decode(raw, services.settings)))
                    except (ApplianceError, OSError) as exc:
                        out.write(json.dumps({"file": file.path.name, "error": str(exc)}) + "\n")
                        failures += 1
                for path, item in inputs:
                    live, future = serving.submit_waiting(workspace, endpoint, item)
                    prediction, _ = future.result()
                    # The keywords the model was given (none for a task that takes none).
                    kept = parse_keywords(item.values.get("keywords"))
                    out.write(
                        json.dumps(
                            {"file": path.name, **task.answer(prediction),
                             **({"keywords": kept} if kept else {}),
                             "confidence": round(prediction.confidence, 4),
                             "model": live.version["name"], "version": live.version["version"]}
                        ) + "\n"
                    )  # fmt: skip
                    count += 1
        partial.rename(target)
    finally:
        if ctx.serving is None:
            serving.close()
    return Outcome(
        "succeeded", detail={"output": str(target), "described": count, "unreadable": failures}
    )


def _housekeeping(ctx: JobContext) -> Outcome:
    """Captured predictions past retention, then the home's garbage (`appliance gc`: files no
    row refers to, older than gc_grace_seconds) unless the job says `gc: off`."""
    settings = ctx.services.settings
    deleted = ctx.services.predictions.prune(
        settings.capture_retention_days, settings.capture_max_rows
    )
    detail: dict[str, Any] = {"predictions_deleted": deleted}
    if ctx.job["params"].get("gc", "on") != "off":
        collector = ctx.services.collector
        freed = collector.collect(collector.plan())
        detail.update(gc_freed_bytes=freed.bytes, gc_removed=freed.items)
        if freed.problems:
            detail["gc_problems"] = list(freed.problems)
    return Outcome("succeeded", detail=detail)


def _backup(ctx: JobContext) -> Outcome:
    """A backup of the whole home (whichever workspace holds the job), keeping the newest
    `keep` archives of this job (appliance/backup/retention.py)."""
    from appliance.backup.retention import scheduled_backup

    settings, job = ctx.services.settings, ctx.job
    detail = scheduled_backup(
        settings.home, job["workspace"], job["name"], job["params"], settings.busy_timeout_ms
    )
    return Outcome("succeeded", detail=detail)


KINDS: dict[str, Callable[[JobContext], Outcome]] = {
    "retrain": _retrain,
    "dataset_watch": _dataset_watch,
    "alert_trigger": _alert_trigger,
    "batch_predict": _batch_predict,
    "housekeeping": _housekeeping,
    "backup": _backup,
}


def _job_run(services: Services, job_run_id: str) -> dict[str, Any]:
    rows = services.registry.query("SELECT * FROM job_runs WHERE id = ?", (job_run_id,))
    if not rows:
        raise NotFound(f"no job run '{job_run_id}'")
    row = rows[0]
    row["detail"] = json.loads(row["detail"])
    return row


def _event(services: Services, job: dict[str, Any], kind: str, subject: str, **detail: Any) -> None:
    """An event about `subject` (the endpoint, for deployment events: DORA reads it so)."""
    services.registry.write(
        lambda db: record_event(db, job["workspace_id"], kind, subject, job=job["name"], **detail)
    )
