"""`appliance monitor …`: what deployed models see and answer, read back from the registry.

Each subcommand prints a report for people (figures, tables, sparklines of the trends) or, with
`--json`, the report's data for scripts. The monitoring modules are imported inside the commands:
they pull in PIL, which `appliance --help` must not pay for."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import click

from appliance.cli.context import json_option, services
from appliance.cli.output import emit_json, emit_table
from appliance.plots import bar, sparkline

DASH = "–"
SPARK_WIDTH = 24

window_option = click.option(
    "--window",
    default="1h",
    show_default=True,
    help="How far back to look: 90s, 30m, 1h, 7d, 2w.",
)


@click.group()
def monitor() -> None:
    """Watch what deployed models see and answer: traffic, drift, feedback, alerts and DORA
    figures."""


@monitor.command()
@click.argument("workspace")
@click.option("--endpoint", help="Only this endpoint (default: every endpoint).")
@window_option
@json_option
def summary(workspace: str, endpoint: str | None, window: str, as_json: bool) -> None:
    """Traffic, errors, latency, confidence, ratings and keyword adherence per endpoint, with
    trends."""
    from appliance.errors import NotFound
    from appliance.monitoring import report

    window_s = _window(window)
    data = report.summary(services(), workspace, endpoint, window_s)
    if endpoint is not None and not data["endpoints"]:
        raise NotFound(
            f"no endpoint '{endpoint}' in workspace '{workspace}': nothing is deployed there"
            f" and it answered no predictions in the last {window}"
        )
    if as_json:
        emit_json(data)
        return
    if not data["endpoints"]:
        click.echo(f"{workspace}: no endpoint deployed and no predictions in the last {window}")
        return
    click.echo(f"{workspace} · last {window} · trends in {_buckets(window_s, data)}, oldest first")
    for figures in data["endpoints"]:
        click.echo()
        _endpoint_block(figures, window)


@monitor.command()
@click.argument("workspace")
@click.option("--endpoint", help="Only this endpoint (default: every endpoint).")
@window_option
@click.option(
    "--by",
    metavar="FIELD",
    help="Slice by this field only: lighting, answer, keywords, description, version, endpoint,"
    " latency_ms or an input feature (brightness, chars, …; cut in quartiles). Default:"
    " lighting and the answer's words (a classifier's label).",
)
@click.option(
    "--min-rows", default=10, show_default=True, help="The predictions a slice needs to be listed."
)
@click.option("--top", default=20, show_default=True, help="How many of the worst slices to list.")
@json_option
def slices(
    workspace: str, endpoint: str | None, window: str, by: str | None, min_rows: int, top: int,
    as_json: bool,
) -> None:  # fmt: skip
    """Quality by slice, worst first: which kinds of inputs and answers the model fails on.

    Per slice, the estimated quality (the mean calibrated confidence, with its 95% interval),
    its difference from the whole window, the share of uncertain answers and the ratings: their
    mean and the share rated 2 or lower.
    """
    from appliance.monitoring import report

    data = report.slices(services(), workspace, endpoint, _window(window), by, min_rows, top=top)
    if as_json:
        emit_json(data)
        return
    where = f"{workspace}/{endpoint}" if endpoint else workspace
    overall = data["overall"]
    click.echo(
        f"{where} · last {window} · {_plural(overall['predictions'], 'answered prediction')}"
        f" · slices of at least {min_rows}, worst first"
    )
    metric = data["metric"] or "quality"
    quality = overall["estimated_quality"]
    estimated = (
        f"estimated {metric} {_interval(quality)}" if quality else "no estimate (no calibration)"
    )
    if quality and data["reference"] is not None:
        estimated += f" vs held-out {data['reference']:.2f}"
    reviews = (
        f"; {overall['reviewed']} reviewed, {_percent(overall['corrected_rate'])} corrected"
        if overall["reviewed"]
        else ""
    )
    click.echo(
        f"  all  {estimated}; {_percent(overall['uncertain_rate'])} uncertain;"
        f" {overall['ratings']} rated, mean {_num(overall['mean_rating'])},"
        f" {_percent(overall['rated_low'])} rated low{reviews}"
    )
    click.echo()
    emit_table(
        [
            {
                "slice": _clip(s["slice"]),
                "predictions": str(s["predictions"]),
                "estimated quality": _interval(s["estimated_quality"]),
                "vs all": _versus(s),
                "uncertain": _percent(s["uncertain_rate"]),
                "mean rating": _num(s["mean_rating"]),
                "rated low": DASH
                if s["rated_low"] is None
                else f"{_percent(s['rated_low'])} of {s['ratings']}",
                "corrected": DASH
                if s["corrected_rate"] is None
                else f"{_percent(s['corrected_rate'])} of {s['reviewed']}",
            }
            for s in data["slices"]
        ],
        ("slice", "predictions", "estimated quality", "vs all", "uncertain", "mean rating",
         "rated low", "corrected"),
    )  # fmt: skip
    hidden = data["counted"] - len(data["slices"])
    notes = [f"{hidden} better slices not listed (--top)"] if hidden > 0 else []
    if data["left_out"]:
        notes.append(f"{_plural(data['left_out'], 'slice')} of fewer than {min_rows} left out")
    if notes:
        click.echo("; ".join(notes))


@monitor.command()
@click.argument("workspace")
@click.argument("endpoint")
@window_option
@click.option("--fail-on-drift", is_flag=True, help="Exit with status 3 when any feature drifted.")
@json_option
def drift(workspace: str, endpoint: str, window: str, fail_on_drift: bool, as_json: bool) -> None:
    """Compare ENDPOINT's recent inputs with the training data of the version it serves.

    The exit status is 0 even when a feature drifted; --fail-on-drift makes it 3.
    """
    from appliance.monitoring import report

    window_s = _window(window)
    data = report.drift(services(), workspace, endpoint, window_s)
    if as_json:
        emit_json(data)
    else:
        _drift_report(data, window)
    if fail_on_drift and data["drifted"]:
        click.get_current_context().exit(3)


@monitor.command()
@click.argument("workspace")
@click.option("--endpoint", help="Only feedback on this endpoint's predictions.")
@click.option("--since", default="7d", show_default=True, help="How far back: 30m, 1h, 7d, 2w.")
@click.option("--limit", default=20, show_default=True, help="How many of the latest to list.")
@json_option
def feedback(workspace: str, endpoint: str | None, since: str, limit: int, as_json: bool) -> None:
    """Ratings and thumbs users gave: a summary, then the latest with their predictions."""
    from appliance.monitoring.predictions import since_text

    start = since_text(_window(since))
    predictions = services().predictions
    totals = predictions.feedback_summary(workspace, endpoint, start)
    rows = predictions.feedback(workspace, endpoint, start, limit)
    if as_json:
        emit_json({"summary": totals, "feedback": rows})
        return
    where = f" on {endpoint}" if endpoint else ""
    click.echo(
        f"{workspace}{where} · last {since}: {totals['count']} feedback,"
        f" mean rating {_num(totals['mean_rating'])},"
        f" thumbs {totals['thumbs_up']} up / {totals['thumbs_down']} down"
        + (f", {totals['keywords_ignored']} said a keyword was ignored"
           if totals["keywords_ignored"] else "")
    )  # fmt: skip
    histogram: Mapping[str, int] = totals["histogram"]
    top = max(histogram.values(), default=0)
    for stars in ("1", "2", "3", "4", "5"):
        count = histogram.get(stars, 0)
        click.echo(f"  {stars} ★ {bar(count, top, 20).ljust(20)} {count}")
    if not rows:
        return
    click.echo()
    emit_table(
        [
            {
                "time": _when(r["created_at"]),
                "endpoint": r["endpoint"],
                "rating": DASH if r["rating"] is None else str(r["rating"]),
                "thumb": r["thumb"] or DASH,
                "description": _clip(r["description"]),
                "comment": _clip(r["comment"]),
            }
            for r in rows
        ],
        ("time", "endpoint", "rating", "thumb", "description", "comment"),
    )


@monitor.command()
@click.argument("workspace")
@click.option("--since", default="30d", show_default=True, help="How far back: 7d, 30d, 12w.")
@json_option
def dora(workspace: str, since: str, as_json: bool) -> None:
    """The four DORA figures of model delivery, from the deployment history."""
    from datetime import UTC, datetime, timedelta

    from appliance.monitoring import report

    start = datetime.now(UTC) - timedelta(seconds=_window(since))
    data = report.dora(services(), workspace, start)
    if as_json:
        emit_json(data)
        return
    failure_rate = data["change_failure_rate"]
    lines = {
        "deployment frequency": f"{data['deployment_frequency_per_day']:.3g} per day"
        f" ({_plural(data['deployments'], 'deployment')}, rollbacks included)",
        "lead time for changes": _num(data["lead_time_hours"], " h"),
        "change failure rate": _percent(failure_rate)
        + ("" if failure_rate is None else f" ({_plural(data['failures'], 'failure')})"),
        "time to restore": _num(data["time_to_restore_hours"], " h"),
        "level": f"{data['level']} (read from deployment frequency)",
        "by": _authors(data["authors"]),
    }
    click.echo(f"{workspace} · last {since}: {_when(data['since'])} → {_when(data['until'])}")
    for label, text in lines.items():
        click.echo(f"  {label.ljust(22)} {text}")


def _authors(authors: dict[str, dict[str, int]]) -> str:
    """Who changed what: 'ann 2 deployments, 1 promotion · bob 1 approval'."""
    nouns = (("deployments", "deployment"), ("promotions", "promotion"), ("approvals", "approval"))
    parts = [
        f"{actor} " + ", ".join(_plural(counts[key], noun) for key, noun in nouns if counts[key])
        for actor, counts in authors.items()
    ]
    return " · ".join(parts) or DASH


@monitor.command()
@click.argument("workspace")
@click.option("--firing", is_flag=True, help="Only rules that are firing now.")
@click.option("--history", is_flag=True, help="Also list recent alert events.")
@json_option
def alerts(workspace: str, firing: bool, history: bool, as_json: bool) -> None:
    """The state of each alert rule per endpoint, and with --history what changed when."""
    from appliance.monitoring import alerts as rules

    opened = services()
    states = rules.current(opened, workspace, firing_only=firing)
    events = rules.history(opened, workspace) if history else []
    if as_json:
        emit_json({"alerts": states, **({"history": events} if history else {})})
        return
    if states:
        emit_table(
            [
                {
                    "endpoint": s["endpoint"],
                    "rule": s["rule"],
                    "state": s["state"].upper() if s["state"] == "firing" else s["state"],
                    "value": _num(s["value"]),
                    "threshold": _num(s["threshold"]),
                    "since": _when(s["since"]),
                }
                for s in states
            ],
            ("endpoint", "rule", "state", "value", "threshold", "since"),
        )
    else:
        click.echo("no alert firing" if firing else "no alert rule evaluated yet")
    if not history:
        return
    click.echo()
    click.echo("recent alert events, newest first:")
    if not events:
        click.echo("(none)")
        return
    emit_table(
        [
            {
                "time": _when(e["created_at"]),
                "event": e["kind"].removeprefix("alert_"),
                "endpoint": e["subject"],
                "rule": e["detail"].get("rule", DASH),
                "value": _num(e["detail"].get("value")),
                "threshold": _num(e["detail"].get("threshold")),
            }
            for e in events
        ],
        ("time", "event", "endpoint", "rule", "value", "threshold"),
    )


# -- printing ---------------------------------------------------------------------------------


def _endpoint_block(figures: dict[str, Any], window: str) -> None:
    click.echo(figures["endpoint"])
    if not figures["predictions"]:
        click.echo(f"  no traffic in the last {window}")
        return
    latency = figures["latency_ms"]
    errors = figures["errors"]
    rows = {
        "predictions": f"{figures['predictions']}"
        f" ({_plural(errors, 'error')}, {_percent(figures['error_rate'])}),"
        f" {_num(figures['throughput_per_s'])}/s",
        "latency": f"p50 {_num(latency['p50'], ' ms')}  p95 {_num(latency['p95'], ' ms')}"
        f"  p99 {_num(latency['p99'], ' ms')}",
        "confidence": f"{_num(figures['mean_confidence'])} mean",
        "low light": _percent(figures["low_light_rate"]),
        "uncertain": _percent(figures["uncertain_rate"]),
        "ratings": f"{figures['ratings']}, mean {_num(figures['mean_rating'])}",
    }
    quality = figures["estimated_quality"]
    if quality is not None:
        rows["quality"] = _quality(quality)
    if figures["keywords"]["requests"]:
        rows["keywords"] = _keywords(figures["keywords"])
    for label, text in rows.items():
        click.echo(f"  {label.ljust(12)} {text}")
    keys = ["count", "p95_latency_ms", "confidence", "low_light_rate", "rating"]
    if quality or figures["uncertain_rate"]:  # a flat 0 of a version that never warns: left out
        keys[4:4] = ["uncertain_rate"]
    _trend_lines(figures["trend"], keys + (["estimated_quality"] if quality else []))


def _keywords(kept: Mapping[str, Any]) -> str:
    """'40 requests, 55 of 58 honoured (95%), 2 said ignored'."""
    share = f"{kept['adherence'] * 100:.0f}%" if kept["adherence"] is not None else DASH
    return (
        f"{_plural(kept['requests'], 'request')}, {kept['honoured']} of {kept['given']}"
        f" honoured ({share}), {kept['ignored_feedback']} said ignored"
    )


def _quality(quality: Mapping[str, Any]) -> str:
    """'estimated exact_match 0.81 [0.74, 0.87] vs held-out 0.96; from ratings 0.78 (40 rated)'."""
    text = (
        f"estimated {quality['metric'] or 'quality'} {quality['value']:.2f}"
        f" [{quality['low']:.2f}, {quality['high']:.2f}]"
    )
    if quality["reference"] is not None:
        text += f" vs held-out {quality['reference']:.2f}"
    if quality["feedback"] is None:
        return text + "; no ratings"
    return text + f"; from ratings {quality['feedback']:.2f} ({quality['rated']} rated)"


# Per trend: its label, how one value prints, and the unit after the range.
_TRENDS: dict[str, tuple[str, Callable[[float], str], str]] = {
    "count": ("count", lambda v: f"{v:.0f}", ""),
    "p95_latency_ms": ("p95 latency", lambda v: f"{v:.4g}", " ms"),
    "confidence": ("confidence", lambda v: f"{v:.3g}", ""),
    "low_light_rate": ("low light", lambda v: f"{v * 100:.3g}", "%"),
    "uncertain_rate": ("uncertain", lambda v: f"{v * 100:.3g}", "%"),
    "rating": ("rating", lambda v: f"{v:.3g}", ""),
    "estimated_quality": ("quality", lambda v: f"{v:.3g}", ""),
}


def _trend_lines(trend: Mapping[str, Sequence[float | None]], keys: Sequence[str]) -> None:
    """One sparkline per trend with the range it spans; buckets without data are gaps."""
    click.echo("  trends")
    for key in keys:
        values = trend[key]
        label, fmt, unit = _TRENDS[key]
        present = [v for v in values if v is not None]
        span = f"{fmt(min(present))}..{fmt(max(present))}{unit}" if present else "no data"
        line = sparkline(values, SPARK_WIDTH).ljust(min(len(values), SPARK_WIDTH))
        click.echo(f"    {label.ljust(12)} {line}  {span}")


def _drift_report(data: dict[str, Any], window: str) -> None:
    click.echo(f"{data['workspace']}/{data['endpoint']} serves {data['model']}@{data['version']}")
    reference = data["reference"]
    if reference is None:
        click.echo("  reference    none: the version has no dataset lineage to compare with")
    else:
        click.echo(f"  reference    {reference}")
    click.echo(
        f"  compared     {data['predictions']} predictions of the last {window}"
        f" (a feature needs {data['min_samples']} to be judged)"
    )
    click.echo()
    emit_table(
        [
            {
                "feature": f["feature"],
                "psi": f"{f['psi']:.3f}",
                "ks": f"{f['ks']:.3f}",
                "reference mean": _num(f["reference_mean"]),
                "current mean": _num(f["current_mean"]),
                "status": _status(f, data["min_samples"]),
            }
            for f in data["features"]
        ],
        ("feature", "psi", "ks", "reference mean", "current mean", "status"),
    )
    if data["drifted"]:
        click.echo(f"drifted: {', '.join(data['drifted'])}")
    click.echo(f"  embeddings   {_embedding_line(data['embedding'])}")
    click.echo()
    _trend_lines(data["trend"], ("confidence", "low_light_rate", "rating"))
    if data["new_answer_words"]:
        click.echo(f"  new words    {', '.join(data['new_answer_words'])}")


def _embedding_line(test: Mapping[str, Any] | None) -> str:
    """The embedding test in one line: what it compared, its p-value, and the verdict."""
    if test is None:
        return "not compared: no reference embeddings, or too few captured in the window"
    verdict = "DRIFT" if test["drifted"] else "ok"
    return (
        f"{test['method']} p={test['p_value']:.3g} (statistic {test['statistic']:.3g}),"
        f" {test['live']} recent vs {test['reference']} training embeddings: {verdict}"
    )


def _interval(quality: Mapping[str, Any] | None) -> str:
    """'0.81 [0.74, 0.87]'; a dash without an estimate."""
    if quality is None:
        return DASH
    return f"{quality['value']:.2f} [{quality['low']:.2f}, {quality['high']:.2f}]"


def _versus(figures: Mapping[str, Any]) -> str:
    """A slice against the whole window: its estimate's difference ('-0.31'), or without one
    the difference of its share rated low ('+25% low'), or of its share corrected in review."""
    if figures["vs_all"] is not None:
        return f"{figures['vs_all']:+.2f}"
    if figures["rated_low_vs_all"] is not None:
        return f"{figures['rated_low_vs_all'] * 100:+.0f}% low"
    if figures["corrected_rate_vs_all"] is not None:
        return f"{figures['corrected_rate_vs_all'] * 100:+.0f}% corrected"
    return DASH


def _status(feature: Mapping[str, Any], min_samples: int) -> str:
    if feature["drifted"]:
        return "DRIFT"
    return "too few" if feature["samples"] < min_samples else "ok"


# -- helpers ----------------------------------------------------------------------------------


def _window(text: str) -> int:
    """Duration text as seconds; a bad one is an InvalidInput (`error: …`, exit 1)."""
    from appliance.monitoring.predictions import parse_window

    return parse_window(text)


def _buckets(window_s: float, data: Mapping[str, Any]) -> str:
    """'12 × 5m': the number of trend buckets and how long each is."""
    count = len(data["endpoints"][0]["trend"]["count"]) if data["endpoints"] else 0
    if not count:
        return "no buckets"
    return f"{count} × {_duration(window_s / count)}"


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _num(value: float | None, unit: str = "") -> str:
    return DASH if value is None else f"{value:.4g}{unit}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _percent(value: float | None) -> str:
    return DASH if value is None else f"{value * 100:.1f}%"


def _when(text: str | None) -> str:
    """A stored UTC timestamp to the second, for a table cell."""
    return text[:19].replace("T", " ") if text else DASH


def _clip(text: str | None, width: int = 40) -> str:
    text = " ".join((text or "").split())
    if not text:
        return DASH
    return text if len(text) <= width else text[: width - 1] + "…"
