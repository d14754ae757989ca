"""The demo's monitoring chapter: sellers' traffic with ratings, then what monitoring makes of
it (uncertain and low_light warnings on the wrong answers, brightness drift, firing alerts,
feedback beside the label-free quality estimate, DORA)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.demo.options import ENDPOINT, WORKSPACE, DemoOptions, rows_of
from appliance.services import Services

if TYPE_CHECKING:
    from appliance.server.client import ServerClient


def traffic_and_monitoring(
    services: Services,
    server: ServerClient,
    scratch: Path,
    options: DemoOptions,
    note: Callable[[str], None],
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Sellers' traffic with ratings, then what monitoring makes of it."""
    from appliance.datasets.synthetic import generate
    from appliance.monitoring import alerts

    streams = {
        "normal": generate(
            scratch / "traffic-normal", count=options.traffic_normal, seed=options.seed + 3
        ).path,
        "low": generate(
            scratch / "traffic-low", count=options.traffic_low_light, seed=options.seed + 4,
            low_light_fraction=1.0,
        ).path,
    }  # fmt: skip
    note(
        f"sellers' traffic: {options.traffic_normal} ordinary photos, then "
        f"{options.traffic_low_light} taken in low light; each seller rates the description "
        "(5 when right, 2 when wrong) through POST /v1/predictions/{id}/feedback"
    )
    counts: dict[str, dict[str, int]] = {}
    truths: dict[str, str] = {}  # prediction id → the right description, for the reviewers
    estimates: dict[str, dict[str, Any] | None] = {}
    served = 0
    for lighting, folder in streams.items():
        right = warned = warned_wrong = 0
        rows = rows_of(folder)
        ratings: list[tuple[str, int]] = []  # the low-light photos' ratings come in later
        for row in rows:
            answer = server.post_bytes(
                f"/v1/endpoints/{ENDPOINT}/predict",
                (folder / row["file_name"]).read_bytes(), "image/png",
            )  # fmt: skip
            correct = answer["description"] == row["text"]
            truths[answer["id"]] = row["text"]
            right += correct
            uncertain = "uncertain" in answer["warnings"]
            warned += uncertain
            warned_wrong += uncertain and not correct
            ratings.append((answer["id"], 5 if correct else 2))
            if lighting == "normal":
                rate_answers(server, ratings)
        served += len(rows)
        estimates[lighting] = estimate_when_captured(server, served)
        rate_answers(server, ratings)
        wrong = len(rows) - right
        counts[lighting] = {
            "photos": len(rows), "right": right, "uncertain": warned,
            "uncertain_wrong": warned_wrong,
        }  # fmt: skip
        say(
            f"   {lighting:<6} {right}/{len(rows)} described exactly; uncertain warned on "
            f"{warned_wrong} of the {wrong} wrong and {warned - warned_wrong} of the {right} right"
        )
    drift = server.get(f"/v1/workspaces/{WORKSPACE}/monitoring/drift?endpoint={ENDPOINT}")
    shown = ", ".join(
        f"{f['feature']} psi {f['psi']:.2f} ks {f['ks']:.2f}{' DRIFT' if f['drifted'] else ''}"
        for f in drift["features"]
        if f["feature"] in ("brightness", "contrast", "sharpness")
    )
    note(f"drift against {drift['reference']} (GET …/monitoring/drift): {shown}")
    say(f"   {embedding_line(drift)}")
    alerts.evaluate(services)  # the server's monitor also does this every monitor_interval_s
    firing = [
        f"{a['rule']} ({a['value']:.3g} vs {a['threshold']:.3g})"
        for a in alerts.current(services, WORKSPACE, firing_only=True)
    ]
    note(f"alerts firing on {ENDPOINT}: {', '.join(firing) or 'none'}")
    feedback = server.get(f"/v1/workspaces/{WORKSPACE}/monitoring/feedback")["summary"]
    summary = server.get(f"/v1/workspaces/{WORKSPACE}/monitoring/summary")["endpoints"][0]
    latency = summary["latency_ms"]
    note(
        f"{summary['predictions']} predictions captured: p50 {latency['p50']:.1f} ms, "
        f"p95 {latency['p95']:.1f} ms; {feedback['count']} ratings, mean "
        f"{feedback['mean_rating']:.2f}"
    )
    estimate = summary.get("estimated_quality")
    before, during = estimates.get("normal"), estimates.get("low")
    if estimate and before and during:
        # A model that knows when it errs in the dark: it falls (the demo's v1); the fast
        # demo's model is about equally unsure of everything, and it holds.
        moved = "fell" if during["value"] < before["value"] - 0.005 else "held"
        note(
            f"the label-free estimate {moved} at once: {before['value']:.2f} after the ordinary "
            f"photos, {during['value']:.2f} with the low-light ones before any of their ratings "
            f"came in (rated so far: {ratio(before['feedback'])}); the ratings, later, say "
            f"{ratio(estimate['feedback'])}"
        )
    if estimate:
        note(
            f"estimated {estimate['metric']} without labels (the mean calibrated confidence): "
            f"{estimate['value']:.2f} [{estimate['low']:.2f}, {estimate['high']:.2f}] against "
            f"{estimate['reference']:.2f} held out; from the ratings "
            + ("–" if estimate["feedback"] is None else f"{estimate['feedback']:.2f}")
        )
    dora = server.get(f"/v1/workspaces/{WORKSPACE}/monitoring/dora")
    note(
        f"DORA: {dora['deployments']} deployment(s), lead time "
        f"{hours(dora['lead_time_hours'])}, change failure rate "
        f"{rate(dora['change_failure_rate'])}, time to restore "
        f"{hours(dora['time_to_restore_hours'])} ({dora['level']})"
    )
    review = review_chapter(server, truths, note)
    return {
        "traffic": counts, "drift": drift, "alerts": firing, "dora": dora, "review": review,
    }  # fmt: skip


def rate_answers(server: ServerClient, ratings: list[tuple[str, int]]) -> None:
    """Sellers rate the answers (5 when right, 2 when wrong); the list empties as they do."""
    for prediction_id, rating in ratings:
        server.post_json(f"/v1/predictions/{prediction_id}/feedback", {"rating": rating})
    ratings.clear()


def estimate_when_captured(server: ServerClient, predictions: int) -> dict[str, Any] | None:
    """The endpoint's label-free quality estimate once its first `predictions` are captured
    (capture writes them a moment after answering); None without a calibration."""
    deadline = time.monotonic() + 10
    while True:
        summary = server.get(f"/v1/workspaces/{WORKSPACE}/monitoring/summary")["endpoints"][0]
        if summary["predictions"] >= predictions or time.monotonic() > deadline:
            return summary.get("estimated_quality")
        time.sleep(0.1)


def ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def review_chapter(
    server: ServerClient, truths: dict[str, str], note: Callable[[str], None]
) -> dict[str, Any]:
    """Sellers go through the review queue (the answers kept because they were uncertain or
    rated low): each accepts a right description and corrects a wrong one; the reviewed rows
    become the next version of the dataset, which the retrain will train on."""
    queue = server.get(f"/v1/workspaces/{WORKSPACE}/review?endpoint={ENDPOINT}&limit=500")
    corrected = accepted = 0
    for item in queue["items"]:
        truth = truths.get(item["prediction_id"])
        if truth is None:
            continue
        if truth == item["answer"]:
            server.post_json(f"/v1/review/{item['id']}", {"action": "accept"})
            accepted += 1
        else:
            server.post_json(f"/v1/review/{item['id']}", {"action": "correct", "text": truth})
            corrected += 1
    exported = server.post_json(f"/v1/workspaces/{WORKSPACE}/review/export", {"endpoint": ENDPOINT})
    reasons = Counter(item["reason"] for item in queue["items"])
    note(
        f"review queue (GET …/review): {len(queue['items'])} answers kept for a person "
        f"({', '.join(f'{n} {r}' for r, n in sorted(reasons.items()))}); sellers corrected "
        f"{corrected} and accepted {accepted} → {exported['message']}"
    )
    return {"corrected": corrected, "accepted": accepted, "export": exported}


def hours(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 1 / 60:
        return f"{value * 3600:.0f} s"
    return f"{value * 60:.1f} min" if value < 1 else f"{value:.1f} h"


def rate(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def embedding_line(drift: dict[str, Any]) -> str:
    """The drift report's embedding test in one line."""
    test = drift.get("embedding")
    if not test:
        return "embedding drift: not measured (no reference embeddings, or too few live ones)"
    verdict = "DRIFT" if test["drifted"] else "no drift"
    return (
        f"embedding drift (the model's own view, MMD of {test['live']} live vs "
        f"{test['reference']} training embeddings): p {test['p_value']:.3f} {verdict}"
    )
