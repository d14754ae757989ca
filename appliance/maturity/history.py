"""The workspace's deployment history as DORA figures: over the whole window (the same figures
as `appliance monitor dora`, from the same pure `compute`) and per day (or hour, or week) for the
report's trend plot."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from appliance.monitoring.dora import Change, Dora, compute
from appliance.services import Services

# Windows up to this long are plotted per hour, up to the next per day, longer ones per week:
# from about 24 to about 60 points, enough to see a trend and few enough to read each bar.
HOURLY_UP_TO = timedelta(days=2)
DAILY_UP_TO = timedelta(days=62)


class History:
    def __init__(self, services: Services, workspace_id: str):
        self.events = services.registry.query(
            "SELECT * FROM events WHERE workspace_id = ? ORDER BY id", (workspace_id,)
        )
        for event in self.events:
            event["detail"] = json.loads(event["detail"])
        self.changes = _changes(services, workspace_id)

    def dora(self, since: datetime, until: datetime) -> Dora:
        return compute(self.events, self.changes, since, until)

    def trend(self, since: datetime, until: datetime) -> tuple[str, list[dict[str, Any]]]:
        """(bucket name, one point per bucket, oldest first): each bucket's deployments and
        median lead time in hours (None when nothing with a known change was deployed)."""
        size, name = bucket(until - since)
        points = []
        start = since
        while start < until:
            end = min(start + size, until)
            figures = compute(self.events, self.changes, start, end)
            points.append(
                {
                    "start": figures.since,
                    "end": figures.until,
                    "deployments": figures.deployments,
                    "lead_time_hours": figures.lead_time_hours,
                }
            )
            start = end
        return name, points


def bucket(span: timedelta) -> tuple[timedelta, str]:
    if span <= HOURLY_UP_TO:
        return timedelta(hours=1), "hour"
    if span <= DAILY_UP_TO:
        return timedelta(days=1), "day"
    return timedelta(days=7), "week"


def _changes(services: Services, workspace_id: str) -> dict[str, Change]:
    """Per deployed version of the workspace, when the change it ships was made: the earliest of
    its run's and its dataset version's creation (as `monitoring.report.dora` reads it)."""
    rows = services.registry.query(
        "SELECT v.id, r.created_at AS run_at, dv.created_at AS data_at FROM model_versions v"
        " JOIN models m ON m.id = v.model_id"
        " LEFT JOIN runs r ON r.id = v.run_id"
        " LEFT JOIN dataset_versions dv ON dv.dataset_id = v.dataset_id"
        " AND dv.digest = v.dataset_digest"
        " WHERE v.id IN (SELECT model_version_id FROM events WHERE workspace_id = ?"
        " AND kind = 'deployed')",
        (workspace_id,),
    )
    changes = {}
    for row in rows:
        times = [t for t in (row["run_at"], row["data_at"]) if t]
        if times:
            changes[row["id"]] = Change(row["id"], min(times))
    return changes
