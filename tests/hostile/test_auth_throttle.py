"""Guessing the token: after five wrong tokens an address waits, doubling, before any try (the
right token too); a success forgets the failures; another address is not held back."""

from __future__ import annotations

import time
from pathlib import Path

from serving_harness import running_server

from appliance.server.throttle import AuthThrottle, TooManyAttempts
from appliance.services import Services

JOB = {"name": "tidy", "kind": "housekeeping", "trigger": "every 1h"}


def test_wrong_tokens_over_http_get_429_with_retry_after(isolated_home: Path) -> None:
    with Services.open(home=isolated_home, token="s3cret") as services, running_server(
        services
    ) as http:  # fmt: skip
        services.workspaces.create("ads")
        path = "/v1/workspaces/ads/jobs"
        for _ in range(5):
            wrong = http.post(path, json=JOB, headers={"authorization": "Bearer guess"})
            assert wrong.status_code == 401
        sixth = http.post(path, json=JOB, headers={"authorization": "Bearer guess"})
        assert sixth.status_code == 401  # counted: from now on the address waits
        right = http.post(path, json=JOB, headers={"authorization": "Bearer s3cret"})
        assert right.status_code == 429 and right.headers["retry-after"] == "1"
        assert "too many failed authentications" in right.json()["error"]
        assert services.jobs.list() == []
        time.sleep(1.1)
        right = http.post(path, json=JOB, headers={"authorization": "Bearer s3cret"})
        assert right.status_code == 201, right.text


def test_the_wait_doubles_and_a_success_forgets() -> None:
    throttle = AuthThrottle()
    for _ in range(5):
        throttle.check("10.0.0.1")
        throttle.failed("10.0.0.1")
    waits = []
    for _ in range(4):
        throttle.failed("10.0.0.1")
        try:
            throttle.check("10.0.0.1")
        except TooManyAttempts as exc:
            waits.append(exc.retry_after)
    assert waits == [1, 2, 4, 8]
    throttle.check("10.0.0.2")  # another address is not held back
    throttle.succeeded("10.0.0.1")
    throttle.check("10.0.0.1")


def test_a_request_without_a_token_is_not_a_guess(isolated_home: Path) -> None:
    with Services.open(home=isolated_home, token="s3cret") as services, running_server(
        services
    ) as http:  # fmt: skip
        answers = [http.post("/v1/deployments/x/rollback", json={}).status_code for _ in range(8)]
        assert answers == [401] * 8


def test_a_throttled_address_still_gets_its_health_probes_and_a_clear_401(
    isolated_home: Path,
) -> None:
    with Services.open(home=isolated_home, token="s3cret") as services, running_server(
        services
    ) as http:  # fmt: skip
        guess = {"authorization": "Bearer guess"}
        answers = [
            http.post("/v1/deployments/x/rollback", json={}, headers=guess).status_code
            for _ in range(8)
        ]
        assert answers == [401] * 6 + [429] * 2
        assert http.get("/v2/health/live").status_code == 200  # public, token or not
        # With a token set, reads need one too; a request without one is told so, not throttled.
        answer = http.get("/v1/deployments")
        assert answer.status_code == 401
        assert "appliance user add" in answer.json()["error"]
