"""The maturity report for people: a terminal table, Markdown, and a self-contained HTML page
(inline CSS and SVG plots, no script and no external address) to attach to a review."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from appliance.maturity import svg

MARKS = {"yes": "✔ yes", "partly": "◐ partly", "no": "✘ no"}
COLOURS = {"yes": "#2e7d32", "partly": "#b26a00", "no": "#c62828"}
AREAS = (("tech", "Tech"), ("process", "Process"))
_AUTHORED = (("deployments", "deployment"), ("promotions", "promotion"), ("approvals", "approval"))


def headline(report: Mapping[str, Any]) -> str:
    stage = report["stage"]
    return (
        f"{report['workspace']} · last {report['window']} · stage: {stage['name']}"
        f" (score {stage['score']:.2f}: {stage['yes']} yes, {stage['partly']} partly,"
        f" {stage['no']} no of {stage['total']})"
    )


def terminal(report: Mapping[str, Any], width: int = 100) -> str:
    """The headline, then per area one line per indicator: verdict, name, evidence (wrapped);
    then who made the window's changes, and the stage rule."""
    import textwrap

    lines = [headline(report), ""]
    for area, title in AREAS:
        lines.append(title.upper())
        for item in _area(report, area):
            lines.append(f"  {MARKS[item['verdict']].ljust(9)} {item['name']}")
            wrapped = textwrap.wrap(item["evidence"], width=max(40, width - 14))
            lines.extend(f"{' ' * 14}{text}" for text in wrapped)
        lines.append("")
    lines.append(f"changes by: {people(report['dora'])}")
    lines.append(f"stage rule: {report['stage']['rule']}")
    return "\n".join(lines)


def markdown(report: Mapping[str, Any]) -> str:
    dora = report["dora"]
    lines = [
        f"# Maturity of {report['workspace']}",
        "",
        f"Last {report['window']}: {report['since']} → {report['until']}.",
        "",
        f"**Stage: {report['stage']['name']}** (score {report['stage']['score']:.2f};"
        f" {report['stage']['rule']}).",
        "",
    ]
    for area, title in AREAS:
        lines += [f"## {title}", "", "| indicator | verdict | evidence |", "| --- | --- | --- |"]
        lines += [
            f"| {_cell(i['name'])} | {i['verdict']} | {_cell(i['evidence'])} |"
            for i in _area(report, area)
        ]
        lines.append("")
    lines += [
        "## DORA",
        "",
        f"- deployments: {dora['deployments']} ({dora['deployment_frequency_per_day']:.3g} a day,"
        f" level {dora['level']})",
        f"- lead time for changes: {_hours(dora['lead_time_hours'])}",
        f"- change failure rate: {_rate(dora['change_failure_rate'])}",
        f"- time to restore: {_hours(dora['time_to_restore_hours'])}",
        f"- changes by: {_cell(people(dora))}",
        "",
    ]
    return "\n".join(lines)


def people(dora: Mapping[str, Any]) -> str:
    """Who deployed, promoted and approved in the window: 'ann: 2 deployments, 1 promotion;
    bob: 1 approval', or 'no one' without a change."""
    parts = []
    for actor, counts in dora.get("authors", {}).items():
        made = [f"{counts[key]} {noun if counts[key] == 1 else noun + 's'}"
                for key, noun in _AUTHORED if counts.get(key)]  # fmt: skip
        parts.append(f"{actor}: {', '.join(made)}")
    return "; ".join(parts) or "no one"


def html(report: Mapping[str, Any]) -> str:
    """One page with no external reference: the stage, the indicators and three plots."""
    rows = []
    for area, title in AREAS:
        rows.append(f'<tr class="area"><th colspan="3">{title}</th></tr>')
        for i in _area(report, area):
            rows.append(
                f'<tr class="indicator" id="{escape(i["id"])}"><td>{escape(i["name"])}</td>'
                f'<td class="verdict" style="color:{COLOURS[i["verdict"]]}">'
                f"{escape(MARKS[i['verdict']])}</td><td>{escape(i['evidence'])}</td></tr>"
            )
    stage = report["stage"]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Maturity of {escape(report['workspace'])}</title><style>{_CSS}</style></head>"
        f"<body><h1>Maturity of {escape(report['workspace'])}</h1>"
        f"<p>Last {escape(report['window'])}: {escape(report['since'])} →"
        f" {escape(report['until'])}</p>"
        f'<p class="stage">Stage: <strong>{escape(stage["name"])}</strong>'
        f" (score {stage['score']:.2f}: {stage['yes']} yes, {stage['partly']} partly,"
        f' {stage["no"]} no)</p><p class="rule">{escape(stage["rule"])}</p>'
        f'<p class="people">Changes by: {escape(people(report["dora"]))}</p>'
        f'<section class="plots">{"".join(plots(report))}</section>'
        f"<table><thead><tr><th>indicator</th><th>verdict</th><th>evidence</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></body></html>\n"
    )


def plots(report: Mapping[str, Any]) -> list[str]:
    """Deployments per bucket (bars), median lead time per bucket (a line), the platform's
    mean happiness rating per bucket (a line)."""
    trends = report["trends"]
    points = trends["dora"]
    labels = [_day(p["start"]) for p in points]
    unit = trends["bucket"]
    happiness = trends["happiness"]
    return [
        svg.bars(
            f"Deployments per {unit}", labels, [p["deployments"] for p in points],
            f"no deployment in the last {report['window']}",
        ),
        svg.line(
            f"Median lead time per {unit} (hours)", labels,
            [p["lead_time_hours"] for p in points], "no lead time: no trained version deployed",
        ),
        happiness_plot(happiness),
    ]  # fmt: skip


def happiness_plot(points: Sequence[Mapping[str, Any]]) -> str:
    """The platform's mean 1–5 rating per period; 'no platform ratings' when none was given."""
    return svg.line(
        "Platform happiness (mean rating 1–5)",
        [_day(p["start"]) for p in points],
        [p["mean"] if p.get("count") else None for p in points],
        "no platform ratings",
    )


def _area(report: Mapping[str, Any], area: str) -> list[dict[str, Any]]:
    return [i for i in report["indicators"] if i["area"] == area]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _day(text: str) -> str:
    return text[5:16].replace("T", " ") if len(text) >= 16 else text  # 'MM-DD HH:MM'


def _hours(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g} h"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


_CSS = (
    "body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:960px}"
    "table{border-collapse:collapse;width:100%;margin-top:16px}"
    "td,th{border-bottom:1px solid #ddd;padding:6px 8px;text-align:left;vertical-align:top}"
    "tr.area th{background:#f3f3f3}td.verdict{white-space:nowrap;font-weight:bold}"
    ".plots{display:flex;flex-wrap:wrap;gap:12px}.rule{color:#666;font-size:90%}"
)
