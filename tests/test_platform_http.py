"""Platform ratings and the platform report over real HTTP on loopback: a rating is stored and
read back and shows in the report's happiness; bad ratings, long comments, a 10 MB body, an
unknown workspace and a body that is not declared JSON are refused with a clear message and
store nothing; with a token, a rating needs it and the report does not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serving_harness import running_server, wait_ready

from appliance.services import Services

FEEDBACK = "/v1/platform/feedback"
REPORT = "/v1/platform/report"
JSON = {"content-type": "application/json"}


@pytest.fixture
def server(isolated_home: Path) -> Iterator[tuple[Services, httpx.Client]]:
    with Services.open(home=isolated_home) as services:
        services.workspaces.create("ads")
        with running_server(services, restore=False) as client:
            wait_ready(client)
            yield services, client


def stored(services: Services) -> int:
    return int(services.registry.query("SELECT count(*) AS n FROM platform_feedback")[0]["n"])


def test_a_rating_is_stored_listed_and_reported(server: tuple[Services, httpx.Client]) -> None:
    services, client = server
    answer = client.post(
        FEEDBACK, json={"rating": 4, "comment": "deploys are easy", "workspace": "ads"}
    )
    assert answer.status_code == 201, answer.text
    row = answer.json()
    assert (row["rating"], row["comment"], row["workspace"]) == (4, "deploys are easy", "ads")
    assert (row["source"], row["user"]) == ("http", "http")
    assert client.post(FEEDBACK, json={"rating": 2, "user": "ana"}).status_code == 201

    listed = client.get(FEEDBACK, params={"limit": 10}).json()["ratings"]
    assert [r["rating"] for r in listed] == [2, 4]  # newest first
    assert listed[0]["user"] == "ana" and listed[0]["workspace"] is None

    report = client.get(REPORT, params={"window": "7d"})
    assert report.status_code == 200, report.text
    happiness = report.json()["happiness"]
    assert (happiness["count"], happiness["mean"]) == (2, 3.0)
    assert sum(b["count"] for b in happiness["trend"]) == 2
    assert happiness["latest_comments"][0]["comment"] == "deploys are easy"
    body = report.json()
    assert body["window_s"] == 7 * 86_400
    assert body["coverage"]["matrix"] == {
        "ads": dict.fromkeys(body["coverage"]["capabilities"], False)
    }
    assert body["cost"]["energy"]["note"]
    assert stored(services) == 2


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"rating": 0}, 400, "rating must be a whole number from 1 to 5, got 0"),
        ({"rating": 6, "comment": "x"}, 400, "rating must be a whole number from 1 to 5, got 6"),
        ({"rating": 4.5}, 400, "Expected `int`, got `float`"),
        ({"comment": "no rating"}, 400, "missing required field `rating`"),
        ({"rating": 3, "comment": "x" * 2001}, 400, "comment is 2,001 characters; at most 2,000"),
        ({"rating": 3, "workspace": "nope"}, 404, "no workspace 'nope'"),
        ({"rating": 3, "stars": 3}, 400, "unknown field `stars`"),
    ],
)
def test_bad_ratings_are_refused_and_store_nothing(
    server: tuple[Services, httpx.Client], body: dict[str, object], status: int, message: str
) -> None:
    services, client = server
    answer = client.post(FEEDBACK, json=body)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]
    assert stored(services) == 0


def test_a_10_mb_comment_is_refused_before_it_is_read(
    server: tuple[Services, httpx.Client],
) -> None:
    services, client = server
    body = json.dumps({"rating": 5, "comment": "x" * 10_000_000}).encode()
    answer = client.post(FEEDBACK, content=body, headers=JSON)  # announces its length
    assert answer.status_code == 413
    assert "at most 13,024 are read" in answer.json()["error"]

    # Streamed without a length, it is cut off past the route's limit (not the server's 10 MB).
    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 65_536):
            yield body[start : start + 65_536]

    streamed = client.post(FEEDBACK, content=chunks(), headers=JSON)
    assert streamed.status_code == 413
    assert "this route's 13,024-byte limit" in streamed.json()["error"]
    assert stored(services) == 0


def test_a_rating_must_be_declared_json(server: tuple[Services, httpx.Client]) -> None:
    services, client = server
    answer = client.post(FEEDBACK, content=b'{"rating": 5}', headers={"content-type": "text/plain"})
    assert answer.status_code == 415
    assert "send JSON with 'content-type: application/json'" in answer.json()["error"]
    assert stored(services) == 0


def test_a_bad_window_is_refused(server: tuple[Services, httpx.Client]) -> None:
    _, client = server
    answer = client.get(REPORT, params={"window": "a while"})
    assert answer.status_code == 400
    assert "window 'a while' is not a duration" in answer.json()["error"]


def test_with_a_token_a_rating_and_the_report_need_it(isolated_home: Path) -> None:
    with (
        Services.open(home=isolated_home, token="s3cret") as services,
        running_server(services, restore=False) as client,
    ):
        wait_ready(client)
        refused = client.post(FEEDBACK, json={"rating": 5})
        assert refused.status_code == 401
        assert stored(services) == 0
        allowed = client.post(
            FEEDBACK, json={"rating": 5}, headers={"authorization": "Bearer s3cret"}
        )
        assert allowed.status_code == 201
        assert client.get(REPORT).status_code == 401
        signed = client.get(REPORT, headers={"authorization": "Bearer s3cret"})
        assert signed.json()["happiness"]["count"] == 1
