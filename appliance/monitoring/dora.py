"""DORA metrics for model delivery, computed from the registry's event log.

The four DORA measures map onto endpoints and model versions like this:

- deployment frequency: "deployed" and "rolled_back" events (both put a version live) per day;
- lead time for changes: from when the change behind a deployed version was created (its training
  run or dataset version, whichever came first) to when it went live;
- change failure rate: the share of "deployed" events that failed, where a deployment failed when
  the next deployment event on its endpoint is a "rolled_back", or a "watch_failed" for that
  endpoint comes before the next deployment event;
- time to restore: from the failure (the "watch_failed" event, else the deployment itself) to the
  next "rolled_back" or "deployed" on that endpoint.

Only events inside [since, until] are counted; the outcome of a deployment inside the window is
judged from every later event given, since a rollback just after `until` still marks it failed.
Beside the four measures, who made each change: every deploy, rollback, promotion and approval in
the window with its event's actor (a user of the server, `admin` or `local`), and a count per
actor. Everything here is pure computation over event rows: no I/O.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DEPLOYMENT_KINDS = frozenset({"deployed", "rolled_back"})
# The changes a person answers for, and which of an author's counts each one adds to.
AUTHORED_KINDS = {
    "deployed": "deployments",
    "rolled_back": "deployments",
    "promoted": "promotions",
    "deploy_approved": "approvals",
}
UNKNOWN_ACTOR = "unknown"  # a row without one (the events table gives every row an actor)

# Deployments per day from which each DORA performance level starts, best first.
LEVELS = (("elite", 1.0), ("high", 1 / 7), ("medium", 1 / 30))


@dataclass(frozen=True)
class Change:
    """When what a deployment ships was created: the run or dataset version behind it."""

    model_version_id: str
    created_at: str  # earliest of the producing run's and the dataset version's created_at


@dataclass(frozen=True)
class Authored:
    """One change in the window and who made it."""

    at: str
    kind: str  # deployed, rolled_back, promoted or deploy_approved
    subject: str  # the endpoint of a deploy, rollback or approval; MODEL@ALIAS of a promotion
    version: str | None  # MODEL@N, where the event names it
    actor: str


@dataclass(frozen=True)
class Author:
    """What one actor did in the window: `deployments` counts deploys and rollbacks, as
    `Dora.deployments` does; `promotions` promotions through the gate (forced ones too);
    `approvals` the deploys a person approved for a job that waited for one."""

    deployments: int = 0
    promotions: int = 0
    approvals: int = 0


@dataclass(frozen=True)
class Dora:
    """DORA metrics over a window.

    `level` is read from deployment frequency alone: "elite" at one or more deployments a day,
    "high" at one or more a week, "medium" at one or more a month (30 days), else "low".
    """

    since: str
    until: str
    deployments: int
    deployment_frequency_per_day: float
    lead_time_hours: float | None
    change_failure_rate: float | None
    time_to_restore_hours: float | None
    failures: int
    level: str
    authors: dict[str, Author] = field(default_factory=dict)  # per actor, by name
    changes: list[Authored] = field(default_factory=list)  # newest first


def parse_time(text: str) -> datetime:
    """ISO-8601 text ("…Z" or with an offset) as an aware UTC datetime; naive text is UTC."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # the registry's own timestamp format


def _hours(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() / 3600


def level_for(per_day: float) -> str:
    """The DORA performance level for a deployment frequency (see `Dora`)."""
    for name, floor in LEVELS:
        if per_day >= floor:
            return name
    return "low"


@dataclass(frozen=True)
class _Event:
    at: datetime
    order: int  # the row id: breaks ties between events with the same timestamp
    kind: str
    subject: str
    model_version_id: str | None
    actor: str
    detail: Mapping[str, Any]


def _failure(
    deployed_at: datetime, later: Sequence[_Event]
) -> tuple[datetime | None, datetime | None]:
    """(failed at, restored at) for a deployment, given the events after it on its endpoint.

    Failed at is None when the deployment did not fail; restored at is None while nothing has
    replaced a failed deployment yet.
    """
    watch_failed_at: datetime | None = None
    for event in later:
        if event.kind == "watch_failed":
            watch_failed_at = watch_failed_at or event.at
        elif event.kind in DEPLOYMENT_KINDS:
            if watch_failed_at is not None:
                return watch_failed_at, event.at
            if event.kind == "rolled_back":  # no failed watch: it failed from the start
                return deployed_at, event.at
            return None, None
    return watch_failed_at, None


def compute(
    events: Sequence[Mapping[str, Any]],
    changes: Mapping[str, Change],
    since: datetime,
    until: datetime,
) -> Dora:
    """DORA metrics for the events (rows of the `events` table) between `since` and `until`.

    `changes` maps a model version id to the change it ships; deployments of versions missing
    from it are left out of the lead time. Rates are rounded to 4 decimals, hours to 3.
    """
    since, until = _utc(since), _utc(until)
    if until <= since:
        raise ValueError(f"the window must end after it starts: {_iso(since)} .. {_iso(until)}")
    parsed = [
        _Event(
            at=parse_time(row["created_at"]),
            order=int(row.get("id") or 0),
            kind=row["kind"],
            subject=row.get("subject") or "",
            model_version_id=row.get("model_version_id"),
            actor=row.get("actor") or UNKNOWN_ACTOR,
            detail=_detail(row.get("detail")),
        )
        for row in events
    ]
    parsed.sort(key=lambda event: (event.at, event.order))  # so callers may pass newest first
    per_endpoint: dict[str, list[_Event]] = defaultdict(list)
    for event in parsed:
        if event.kind in DEPLOYMENT_KINDS or event.kind == "watch_failed":
            per_endpoint[event.subject].append(event)

    deployments = 0
    attempts_failed = 0
    deployed = 0
    failed = 0
    lead_times: list[float] = []
    restore_times: list[float] = []
    position: dict[str, int] = defaultdict(int)  # index of the next event in per_endpoint
    authored: list[Authored] = []
    for event in parsed:
        if event.kind in DEPLOYMENT_KINDS or event.kind == "watch_failed":
            position[event.subject] += 1
        if not since <= event.at <= until:
            continue
        if event.kind in AUTHORED_KINDS:
            authored.append(_authored(event))
        if event.kind == "deploy_failed":
            attempts_failed += 1
        if event.kind not in DEPLOYMENT_KINDS:
            continue
        deployments += 1
        if event.kind != "deployed":
            continue
        deployed += 1
        change = changes.get(event.model_version_id or "")
        if change is not None:
            lead_times.append(_hours(parse_time(change.created_at), event.at))
        later = per_endpoint[event.subject][position[event.subject] :]
        failed_at, restored_at = _failure(event.at, later)
        if failed_at is None:
            continue
        failed += 1
        if restored_at is not None:  # an endpoint still broken has no restore time yet
            restore_times.append(_hours(failed_at, restored_at))

    per_day = deployments / ((until - since).total_seconds() / 86400)
    return Dora(
        since=_iso(since),
        until=_iso(until),
        deployments=deployments,
        deployment_frequency_per_day=round(per_day, 4),
        lead_time_hours=round(statistics.median(lead_times), 3) if lead_times else None,
        change_failure_rate=round(failed / deployed, 4) if deployed else None,
        time_to_restore_hours=(
            round(statistics.median(restore_times), 3) if restore_times else None
        ),
        failures=failed + attempts_failed,
        level=level_for(per_day),  # unrounded: 1 in 30 days rounds to 0.0333 < 1/30
        authors=_authors(authored),
        changes=authored[::-1],
    )


def _detail(detail: Any) -> Mapping[str, Any]:
    """An event's detail: parsed by the caller, or still its JSON text."""
    if isinstance(detail, str):
        try:
            detail = json.loads(detail)
        except ValueError:
            return {}
    return detail if isinstance(detail, Mapping) else {}


def _authored(event: _Event) -> Authored:
    return Authored(_iso(event.at), event.kind, event.subject, _version(event), event.actor)


def _version(event: _Event) -> str | None:
    """MODEL@N of the version a change is about, where its detail says."""
    version = event.detail.get("version")
    if isinstance(version, str) and "@" in version:  # an approval names it so already
        return version
    if not isinstance(version, int) or isinstance(version, bool):
        return None
    promoted = event.kind == "promoted"  # its subject is MODEL@ALIAS; a deploy's detail names it
    model = event.subject.partition("@")[0] if promoted else event.detail.get("model")
    return f"{model}@{version}" if model else None


def _authors(authored: Sequence[Authored]) -> dict[str, Author]:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for change in authored:
        counts[change.actor][AUTHORED_KINDS[change.kind]] += 1
    return {actor: Author(**counts[actor]) for actor in sorted(counts)}
