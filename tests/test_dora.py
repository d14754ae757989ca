"""DORA metrics over hand-built event logs, with every figure worked out in the comments, and who
made each change: the authors of deploys, rollbacks, promotions and approvals, from real events
written under different actors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from appliance.access.actor import acting_as
from appliance.events import record_event
from appliance.monitoring import report
from appliance.monitoring.dora import (
    Author,
    Authored,
    Change,
    Dora,
    compute,
    level_for,
    parse_time,
)  # fmt: skip
from appliance.services import Services

SINCE = datetime(2026, 11, 24, tzinfo=UTC)
UNTIL = datetime(2026, 11, 26, tzinfo=UTC)  # a two-day window


def event(
    id: int,
    kind: str,
    at: str,
    subject: str = "captions",
    version: str | None = None,
    actor: str = "local",
    number: int | str | None = None,  # the detail's version: N, or MODEL@N for an approval
    **detail: Any,
) -> dict[str, Any]:
    if number is not None:
        detail["version"] = number
    return {
        "id": id,
        "kind": kind,
        "subject": subject,
        "model_version_id": version,
        "deployment_id": f"dep-{subject}",
        "detail": detail,
        "created_at": f"{at}.000000Z",
        "actor": actor,
    }


HISTORY = [
    event(1, "deployed", "2026-11-23T12:00:00", version="v0", actor="old"),  # before the window
    event(
        2, "deployed", "2026-11-24T09:00:00", version="v1", actor="ann", previous_version_id="v0",
        model="captioner", number=1,
    ),
    event(3, "alias_set", "2026-11-24T10:00:00", subject="captioner", version="v1", actor="ann"),
    event(
        4, "deployed", "2026-11-24T15:00:00", version="v2", actor="ann", previous_version_id="v1"
    ),
    event(5, "rolled_back", "2026-11-24T15:30:00", version="v1", actor="bob"),  # v2 failed
    event(6, "alert_firing", "2026-11-25T07:00:00", rule="latency"),
    event(7, "deploy_failed", "2026-11-25T08:00:00", version="v3", actor="bob"),  # an attempt
    event(12, "deploy_approved", "2026-11-25T09:30:00", actor="cy", number="captioner@3"),
    event(8, "deployed", "2026-11-25T10:00:00", version="v3", previous_version_id="v1"),
    event(
        9, "promoted", "2026-11-25T11:00:00", subject="captioner@production", version="v3",
        actor="bob", number=3,
    ),
    event(10, "deployed", "2026-11-26T06:00:00", subject="other", version="x1", actor="old"),
]  # fmt: skip
CHANGES = {
    "v1": Change("v1", "2026-11-24T06:00:00.000000Z"),  # lead time 3 h
    "v2": Change("v2", "2026-11-23T15:00:00.000000Z"),  # lead time 24 h
    # v3 has no known change: left out of the lead time
}


def test_a_two_day_history() -> None:
    assert compute(HISTORY, CHANGES, SINCE, UNTIL) == Dora(
        since="2026-11-24T00:00:00.000000Z",
        until="2026-11-26T00:00:00.000000Z",
        deployments=4,  # ids 2, 4, 5 (the rollback) and 8
        deployment_frequency_per_day=2.0,
        lead_time_hours=13.5,  # median of 3 and 24
        change_failure_rate=0.3333,  # v2 of the three "deployed"
        time_to_restore_hours=0.5,  # v2 went live at 15:00, rolled back at 15:30
        failures=2,  # v2 and the failed attempt at v3
        level="elite",
        # Inside the window only: "old" deployed before and after it. The alias move and the
        # failed attempt are no one's change; the approval and the promotion are.
        authors={
            "ann": Author(deployments=2),
            "bob": Author(deployments=1, promotions=1),
            "cy": Author(approvals=1),
            "local": Author(deployments=1),
        },
        changes=[
            Authored(
                "2026-11-25T11:00:00.000000Z",
                "promoted",
                "captioner@production",
                "captioner@3",
                "bob",
            ),
            Authored("2026-11-25T10:00:00.000000Z", "deployed", "captions", None, "local"),
            Authored(
                "2026-11-25T09:30:00.000000Z", "deploy_approved", "captions", "captioner@3", "cy"
            ),
            Authored("2026-11-24T15:30:00.000000Z", "rolled_back", "captions", None, "bob"),
            Authored("2026-11-24T15:00:00.000000Z", "deployed", "captions", None, "ann"),
            Authored("2026-11-24T09:00:00.000000Z", "deployed", "captions", "captioner@1", "ann"),
        ],
    )


def test_the_log_may_come_newest_first() -> None:
    newest_first = list(reversed(HISTORY))
    assert compute(newest_first, CHANGES, SINCE, UNTIL) == compute(HISTORY, CHANGES, SINCE, UNTIL)


def test_an_empty_history() -> None:
    assert compute([], {}, SINCE, UNTIL) == Dora(
        since="2026-11-24T00:00:00.000000Z",
        until="2026-11-26T00:00:00.000000Z",
        deployments=0,
        deployment_frequency_per_day=0.0,
        lead_time_hours=None,
        change_failure_rate=None,
        time_to_restore_hours=None,
        failures=0,
        level="low",
        authors={},
        changes=[],
    )


def test_events_outside_the_window_are_ignored() -> None:
    outside = [
        event(1, "deployed", "2026-11-23T23:59:59", version="v1"),
        event(2, "deploy_failed", "2026-11-20T08:00:00", version="v2"),
        event(3, "deployed", "2026-11-26T00:00:01", version="v2"),
        event(4, "rolled_back", "2026-11-26T00:30:00", version="v1"),
    ]
    result = compute(outside, {"v1": Change("v1", "2026-11-23T00:00:00.000000Z")}, SINCE, UNTIL)
    assert (result.deployments, result.failures, result.level) == (0, 0, "low")
    assert result.lead_time_hours is result.change_failure_rate is None
    # Both ends are inside: a deploy exactly at `since` and a rollback exactly at `until`.
    edges = [
        event(1, "deployed", "2026-11-24T00:00:00", version="v1"),
        event(2, "rolled_back", "2026-11-26T00:00:00", version="v0"),
    ]
    result = compute(edges, {}, SINCE, UNTIL)
    assert (result.deployments, result.deployment_frequency_per_day) == (2, 1.0)
    assert (result.change_failure_rate, result.time_to_restore_hours) == (1.0, 48.0)


def test_a_rollback_after_the_window_still_marks_a_deploy_in_it_failed() -> None:
    late = [
        event(1, "deployed", "2026-11-25T23:00:00", version="v2"),
        event(2, "rolled_back", "2026-11-26T01:00:00", version="v1"),
    ]
    result = compute(late, {}, SINCE, UNTIL)
    assert (result.deployments, result.failures, result.change_failure_rate) == (1, 1, 1.0)
    assert result.time_to_restore_hours == 2.0


def test_failed_watches_per_endpoint() -> None:
    since, until = datetime(2026, 11, 25, tzinfo=UTC), datetime(2026, 11, 26, tzinfo=UTC)
    events = [
        event(1, "deployed", "2026-11-25T12:00:00", subject="tags", version="t2"),
        event(2, "watch_failed", "2026-11-25T12:10:00", subject="tags"),
        # Another endpoint in between neither fails nor restores "tags".
        event(3, "deployed", "2026-11-25T12:20:00", subject="captions", version="c2"),
        event(4, "rolled_back", "2026-11-25T12:40:00", subject="tags", version="t1"),
        event(5, "deployed", "2026-11-25T14:00:00", subject="tags", version="t3"),
        event(6, "watch_failed", "2026-11-25T14:05:00", subject="tags"),  # never restored
        event(7, "alert_firing", "2026-11-25T14:06:00", subject="tags", rule="errors"),
    ]
    result = compute(events, {}, since, until)
    assert result.deployments == 4
    assert result.deployment_frequency_per_day == 4.0
    assert result.change_failure_rate == 0.6667  # t2 and t3 of t2, c2, t3
    assert result.failures == 2
    assert result.time_to_restore_hours == 0.5  # from the failed watch at 12:10, not 12:00


def test_a_fix_forward_restores_and_a_later_watch_blames_only_its_own_deploy() -> None:
    events = [
        event(1, "deployed", "2026-11-24T10:00:00", version="v1"),
        event(2, "watch_failed", "2026-11-24T10:05:00"),
        event(3, "watch_failed", "2026-11-24T10:15:00"),  # the first failure counts
        event(4, "deployed", "2026-11-24T10:55:00", version="v2"),  # fixed forward
        event(5, "deployed", "2026-11-24T12:00:00", version="v3"),
        event(6, "deployed", "2026-11-24T13:00:00", version="v4"),
        event(7, "watch_failed", "2026-11-24T13:30:00"),  # blames v4 only
    ]
    result = compute(events, {}, SINCE, UNTIL)
    assert result.change_failure_rate == 0.5  # v1 and v4 of four
    assert result.time_to_restore_hours == 0.833  # 10:05 to 10:55
    assert result.failures == 2


def test_lead_time_median_and_rounding() -> None:
    events = [
        event(1, "deployed", "2026-11-24T10:00:00", version="a"),
        event(2, "deployed", "2026-11-24T11:00:00", version="b"),
        event(3, "deployed", "2026-11-24T12:00:00", version="c"),
    ]
    changes = {
        "a": Change("a", "2026-11-24T09:40:00.000000Z"),  # 1/3 h
        "b": Change("b", "2026-11-24T09:00:00.000000Z"),  # 2 h
        "c": Change("c", "2026-11-20T12:00:00.000000Z"),  # 96 h
    }
    assert compute(events, changes, SINCE, UNTIL).lead_time_hours == 2.0
    del changes["b"]
    assert compute(events, changes, SINCE, UNTIL).lead_time_hours == 48.167  # (1/3 + 96) / 2


@pytest.mark.parametrize(
    ("per_day", "level"),
    [
        (3.0, "elite"),
        (1.0, "elite"),
        (0.99, "high"),
        (1 / 7, "high"),
        (0.1, "medium"),
        (1 / 30, "medium"),
        (0.03, "low"),
        (0.0, "low"),
    ],
)
def test_levels(per_day: float, level: str) -> None:
    assert level_for(per_day) == level


def test_one_deploy_a_month_is_medium() -> None:
    # 1/30 rounds to 0.0333 for display, which is below 1/30: the level uses the exact rate.
    since = UNTIL - timedelta(days=30)
    result = compute([event(1, "deployed", "2026-11-25T10:00:00", version="v1")], {}, since, UNTIL)
    assert (result.deployment_frequency_per_day, result.level) == (0.0333, "medium")


def test_parse_time() -> None:
    assert parse_time("2026-11-26T10:00:00.123456Z") == datetime(
        2026, 11, 26, 10, 0, 0, 123456, tzinfo=UTC
    )
    assert parse_time("2026-11-26T12:00:00+02:00") == datetime(2026, 11, 26, 10, tzinfo=UTC)
    assert parse_time("2026-11-26T10:00:00").tzinfo is UTC
    assert parse_time("2026-11-26T12:00:00+02:00").tzinfo is UTC


def test_window_bounds() -> None:
    with pytest.raises(ValueError, match="must end after it starts"):
        compute([], {}, UNTIL, SINCE)
    # Naive bounds are read as UTC; other offsets are converted.
    naive = compute(HISTORY, CHANGES, SINCE.replace(tzinfo=None), UNTIL.replace(tzinfo=None))
    assert naive == compute(HISTORY, CHANGES, SINCE, UNTIL)
    plus_one = timezone(timedelta(hours=1))
    shifted = compute(HISTORY, CHANGES, SINCE.astimezone(plus_one), UNTIL.astimezone(plus_one))
    assert shifted == compute(HISTORY, CHANGES, SINCE, UNTIL)


def _served_version(services: Services, ws_id: str, vid: str, number: int) -> dict[str, Any]:
    """A model version row of `captioner` (no folder: nothing here loads it)."""

    def insert(db: Any) -> None:
        if not db.execute("SELECT 1 FROM models WHERE id = 'm1'").fetchone():
            db.table("models").insert(
                {"id": "m1", "workspace_id": ws_id, "name": "captioner", "created_at": "x"}
            )
        db.table("model_versions").insert(
            {"id": vid, "model_id": "m1", "version": number, "path": f"models/{vid}",
             "digest": vid, "size": 1, "created_at": "x"}
        )  # fmt: skip

    services.registry.write(insert)
    return {"id": vid, "name": "captioner", "version": number}


def test_the_authors_of_real_events(services: Services) -> None:
    """Deploys and a rollback through the deployment records, a promotion and an approval as
    their writers record them, each under its actor: the workspace's figures name them."""
    from appliance.serving.options import DeployOptions

    ws_id = services.workspaces.create("ads")["id"]
    v1, v2 = (_served_version(services, ws_id, f"v{n}", n) for n in (1, 2))
    with acting_as("ann"):
        services.deployments.record("ads", "captions", v1, DeployOptions())
        services.deployments.record("ads", "captions", v2, DeployOptions())
    with acting_as("bob"):
        services.registry.write(
            lambda db: record_event(
                db, ws_id, "promoted", "captioner@production", model_version_id="v2", version=2
            )
        )
        services.deployments.record("ads", "captions", v1, DeployOptions(), kind="rolled_back")
    services.registry.write(  # as the scheduler's runner records one: `local` on the box
        lambda db: record_event(db, ws_id, "deploy_approved", "captions", version="captioner@2")
    )
    with acting_as("cy"):  # an alias moved by hand is not a promotion
        services.models.set_alias("ads", "captioner@2", "staging")

    figures = report.dora(services, "ads")
    assert figures["deployments"] == 3
    assert figures["authors"] == {
        "ann": {"deployments": 2, "promotions": 0, "approvals": 0},
        "bob": {"deployments": 1, "promotions": 1, "approvals": 0},
        "local": {"deployments": 0, "promotions": 0, "approvals": 1},
    }
    assert [(c["kind"], c["subject"], c["version"], c["actor"]) for c in figures["changes"]] == [
        ("deploy_approved", "captions", "captioner@2", "local"),
        ("rolled_back", "captions", "captioner@1", "bob"),
        ("promoted", "captioner@production", "captioner@2", "bob"),
        ("deployed", "captions", "captioner@2", "ann"),
        ("deployed", "captions", "captioner@1", "ann"),
    ]
