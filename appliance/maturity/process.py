"""The Process indicators: how the team works, read from what happened in the window (DORA
figures, end users' ratings, the review queue, retraining runs)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from appliance.maturity.observed import (
    NO,
    PARTLY,
    PROCESS,
    YES,
    Indicator,
    Observed,
    by_whom,
    counted,
    duration,
    iso,
    plural,
)  # fmt: skip
from appliance.scheduler.jobs import describe_trigger

# A change reaches production within a day: DORA's elite and high performers' lead time.
SHORT_LEAD_TIME_HOURS = 24.0
# Within a week is DORA's medium band: iterating, not yet short.
MEDIUM_LEAD_TIME_HOURS = 24.0 * 7
# A week of ratings is "regular" from 10 on: twice what the mean_rating alert needs to judge (5).
WEEKLY_RATINGS = 10
FEEDBACK_PERIOD = timedelta(days=7)
# DORA's elite and high change failure rate: 0–15 %.
MAX_CHANGE_FAILURE_RATE = 0.15
# DORA's high performers restore service within a day.
MAX_RESTORE_HOURS = 24.0
# Deployment frequency levels (monitoring/dora.py LEVELS) that count as frequent, and as partly.
FREQUENT_LEVELS = ("elite", "high")
OCCASIONAL_LEVELS = ("medium",)


def short_iteration_cycles(o: Observed) -> Indicator:
    lead = o.dora.lead_time_hours
    figures = {"lead_time_hours": lead, "deployments": o.dora.deployments}
    name = "Short iteration cycles"
    if lead is None:
        return _process(
            "iteration", name, NO,
            f"no deployment of a trained version in the last {o.window}, so no lead time:"
            " deploy versions trained here (their run and dataset give the change's start)",
            figures,
        )  # fmt: skip
    text = f"median lead time {duration(lead)} (from change to production) in {o.window}"
    if lead <= SHORT_LEAD_TIME_HOURS:
        return _process("iteration", name, YES, text, figures)
    verdict = PARTLY if lead <= MEDIUM_LEAD_TIME_HOURS else NO
    return _process("iteration", name, verdict, f"{text}; short is under a day", figures)


def end_user_feedback(o: Observed) -> Indicator:
    week_start = max(o.since, o.until - FEEDBACK_PERIOD)
    predictions = o.services.predictions
    week = predictions.feedback_summary(o.workspace["name"], since=iso(week_start))
    window = predictions.feedback_summary(o.workspace["name"], since=o.since_text)
    days = duration((o.until - week_start).total_seconds() / 3600)
    figures = {
        "ratings_last_7_days": week["count"], "ratings_in_window": window["count"],
        "mean_rating": window["mean_rating"], "period_days": round((o.until - week_start).days),
    }  # fmt: skip
    name = "Regular feedback from end users"
    mean = f" (mean rating {window['mean_rating']:.2g})" if window["mean_rating"] else ""
    if week["count"] >= WEEKLY_RATINGS:
        text = f"{plural(week['count'], 'rating')} in {days}{mean}"
        return _process("feedback", name, YES, text, figures)
    if window["count"]:
        text = (
            f"{plural(week['count'], 'rating')} in {days}, {window['count']} in {o.window}{mean};"
            f" regular is {WEEKLY_RATINGS} a week"
        )
        return _process("feedback", name, PARTLY, text, figures)
    return _process(
        "feedback", name, NO,
        f"no end-user rating in the last {o.window}: answers are rated with"
        " POST /v1/predictions/{id}/feedback", figures,
    )  # fmt: skip


def frequent_deployments(o: Observed) -> Indicator:
    dora = o.dora
    deployers, approvers = counted(dora, "deployments"), counted(dora, "approvals")
    figures = {
        "deployments": dora.deployments, "per_day": dora.deployment_frequency_per_day,
        "level": dora.level, "deployed_by": deployers, "approved_by": approvers,
    }  # fmt: skip
    name = "Frequent deployments"
    who = f" by {by_whom(deployers)}" if deployers else ""
    if approvers:
        who += f", approved by {by_whom(approvers)}"
    text = (
        f"{plural(dora.deployments, 'deployment')} in {o.window}{who}"
        f" ({dora.deployment_frequency_per_day:.3g} a day): DORA level {dora.level}"
    )
    if dora.level in FREQUENT_LEVELS:
        return _process("deployments", name, YES, text, figures)
    if dora.level in OCCASIONAL_LEVELS:
        return _process("deployments", name, PARTLY, f"{text}; frequent is weekly", figures)
    if not dora.deployments:
        text = f"no deployment in the last {o.window}: frequent is at least one a week"
    return _process("deployments", name, NO, text, figures)


def change_failure_and_restore(o: Observed) -> Indicator:
    dora = o.dora
    rate, restore = dora.change_failure_rate, dora.time_to_restore_hours
    figures = {
        "change_failure_rate": rate, "time_to_restore_hours": restore,
        "failures": dora.failures, "deployments": dora.deployments,
    }  # fmt: skip
    name = "Low change failure rate, fast restore"
    if rate is None:
        return _process(
            "failures", name, NO,
            f"no version deployed in the last {o.window}: nothing to judge a failure rate on",
            figures,
        )  # fmt: skip
    low = rate <= MAX_CHANGE_FAILURE_RATE
    # No failed deployment needs no restore; a failure never restored has no time yet: not fast.
    failed = rate > 0
    fast = not failed or (restore is not None and restore <= MAX_RESTORE_HOURS)
    restored = (
        "no failed deployment to restore" if not failed
        else "a failed deployment is not restored yet" if restore is None
        else f"median time to restore {duration(restore)}"
    )  # fmt: skip
    text = f"change failure rate {rate:.0%}, {restored}"
    verdict = YES if low and fast else PARTLY if low or fast else NO
    if verdict != YES:
        text += f" (low is ≤ {MAX_CHANGE_FAILURE_RATE:.0%}, fast within a day)"
    return _process("failures", name, verdict, text, figures)


def human_review(o: Observed) -> Indicator:
    counts = o.one(
        "SELECT COUNT(*) AS queued, COALESCE(SUM(status != 'pending'), 0) AS reviewed,"
        " COUNT(exported_to) AS exported FROM review_items WHERE workspace_id = ?"
        " AND created_at >= ? AND created_at <= ?",
        o.ws_id, o.since_text, o.until_text,
    )  # fmt: skip
    figures = dict(counts)
    name = "Human review of uncertain answers"
    if not counts["queued"]:
        return _process(
            "review", name, NO,
            f"no answer went to the review queue in the last {o.window}: uncertain and"
            " low-rated answers are queued while a server serves the endpoint", figures,
        )  # fmt: skip
    text = (
        f"{plural(counts['queued'], 'answer')} queued for review in {o.window},"
        f" {counts['reviewed']} reviewed, {counts['exported']} exported into a dataset version"
    )
    verdict = YES if counts["reviewed"] and counts["exported"] else PARTLY
    return _process("review", name, verdict, text, figures)


def scheduled_retraining(o: Observed) -> Indicator:
    jobs = [j for j in o.services.jobs.list(o.workspace["name"]) if j["kind"] == "retrain"]
    runs = o.query(
        "SELECT r.cause, r.created_at FROM runs r WHERE r.workspace_id = ?"
        " AND r.job_id IS NOT NULL AND r.created_at >= ? AND r.created_at <= ?"
        " ORDER BY r.created_at DESC",
        o.ws_id, o.since_text, o.until_text,
    )  # fmt: skip
    enabled = [j for j in jobs if j["enabled"]]
    figures: dict[str, Any] = {
        "retrain_jobs": [j["name"] for j in jobs], "enabled": [j["name"] for j in enabled],
        "runs": len(runs), "last_run_at": runs[0]["created_at"] if runs else None,
        "causes": sorted({str(r["cause"]).split(":")[0] for r in runs if r["cause"]}),
    }  # fmt: skip
    name = "Scheduled retraining"
    if not jobs:
        return _process(
            "retraining", name, NO,
            "no retrain job: `appliance job add` one on a schedule, a dataset watch or an alert",
            figures,
        )  # fmt: skip
    described = ", ".join(f"{j['name']} ({describe_trigger(j['trigger'])})" for j in jobs)
    if not runs:
        state = "" if enabled else ", paused"
        text = f"retrain {described}{state}: no training run in the last {o.window}"
        return _process("retraining", name, PARTLY, text, figures)
    text = (
        f"retrain {described}: {plural(len(runs), 'training run')} in {o.window}"
        f" ({', '.join(figures['causes']) or 'manual'}), last {o.ago(figures['last_run_at'])}"
    )
    return _process("retraining", name, YES if enabled else PARTLY, text, figures)


def _process(id: str, name: str, verdict: str, evidence: str, figures: dict[str, Any]) -> Indicator:
    return Indicator(id, PROCESS, name, verdict, evidence, figures)
