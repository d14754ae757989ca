"""What a web page can make a browser send, replayed against the real server on loopback with no
token (the default): `text/plain` and form POSTs, a foreign Origin, a rebinding Host. Each is a
4xx that says why, and changes nothing; the same writes as JSON from a client (no Origin, or the
server's own) go through."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from serving_harness import running_server

from appliance.services import Services

JOB = {"name": "tidy", "kind": "housekeeping", "trigger": "every 1h"}


@pytest.fixture
def client(isolated_home: Path) -> Iterator[tuple[Services, httpx.Client]]:
    with Services.open(home=isolated_home) as services, running_server(services) as client:
        services.workspaces.create("ads")
        yield services, client


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"content": '{"name": "tidy", "kind": "housekeeping", "trigger": "every 1h"}',
         "headers": {"content-type": "text/plain"}},
        {"data": JOB},  # application/x-www-form-urlencoded: what a <form> posts
        {"files": {"name": (None, "tidy")}},  # multipart/form-data, also a simple request
    ],
    ids=["text-plain", "form", "multipart"],
)  # fmt: skip
def test_writes_a_page_can_send_without_a_preflight_are_415(
    client: tuple[Services, httpx.Client], request_kwargs: dict[str, object]
) -> None:
    services, http = client
    for path in ("/v1/workspaces/ads/jobs", "/v1/deployments/captions/rollback"):
        answer = http.post(path, **request_kwargs)  # type: ignore[arg-type]
        assert answer.status_code == 415, answer.text
        assert "send JSON with 'content-type: application/json'" in answer.json()["error"]
    assert services.jobs.list() == []


def test_a_foreign_origin_cannot_write_and_the_servers_own_can(
    client: tuple[Services, httpx.Client],
) -> None:
    services, http = client
    for origin in ("http://evil.example", "null", "http://127.0.0.1:1"):
        answer = http.post("/v1/workspaces/ads/jobs", json=JOB, headers={"origin": origin})
        assert answer.status_code == 403, answer.text
        assert f"a write from the web origin '{origin}' is refused" in answer.json()["error"]
    cross = http.post("/v1/workspaces/ads/jobs", json=JOB, headers={"sec-fetch-site": "cross-site"})
    assert cross.status_code == 403
    assert services.jobs.list() == []
    # Reads are not writes: a foreign Origin may read (the browser's CORS keeps the answer from
    # the page); the server's own origin may write.
    assert http.get("/v1/deployments", headers={"origin": "http://evil.example"}).status_code == 200
    own = f"http://{urlsplit(str(http.base_url)).netloc}"
    assert (
        http.post("/v1/workspaces/ads/jobs", json=JOB, headers={"origin": own}).status_code == 201
    )
    assert [j["name"] for j in services.jobs.list()] == ["tidy"]


def test_a_rebinding_host_is_refused_even_for_reads(client: tuple[Services, httpx.Client]) -> None:
    _, http = client
    for method in ("GET", "POST"):
        answer = http.request(method, "/v1/deployments", headers={"host": "attacker.example"})
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"].startswith(
            "the Host header 'attacker.example' does not name this server: it answers to 127.0.0.1, "
            "::1, localhost"
        )
    assert http.get("/v1/deployments", headers={"host": "localhost:1"}).status_code == 200


def test_allowed_hosts_and_origins_open_exactly_what_they_name(isolated_home: Path) -> None:
    settings = {"allowed_hosts": "box.lan", "allowed_origins": "http://laptop:3000"}
    with Services.open(home=isolated_home, **settings) as services, running_server(
        services
    ) as http:  # fmt: skip
        services.workspaces.create("ads")
        assert http.get("/v1/deployments", headers={"host": "box.lan:8765"}).status_code == 200
        assert http.get("/v1/deployments", headers={"host": "other.lan"}).status_code == 400
        ok = http.post(
            "/v1/workspaces/ads/jobs", json=JOB, headers={"origin": "http://laptop:3000"}
        )
        assert ok.status_code == 201, ok.text
        no = http.post(
            "/v1/workspaces/ads/jobs", json=JOB, headers={"origin": "http://laptop:3001"}
        )
        assert no.status_code == 403


def test_a_bodyless_write_needs_no_type_but_is_still_refused_from_a_foreign_origin(
    client: tuple[Services, httpx.Client],
) -> None:
    services, http = client
    services.jobs.add("ads", "tidy", "housekeeping", {"interval_s": 3600}, "", {})
    # fetch(url, {method: "POST", mode: "no-cors"}) from a page: no body, no type, an Origin.
    page = http.post(
        "/v1/workspaces/ads/jobs/tidy/pause", headers={"origin": "http://evil.example"}
    )
    assert page.status_code == 403
    assert services.jobs.get("ads", "tidy")["enabled"]
    assert http.post("/v1/workspaces/ads/jobs/tidy/pause").status_code == 200  # curl -X POST
    assert not services.jobs.get("ads", "tidy")["enabled"]
