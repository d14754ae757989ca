"""Every role against every route, over real HTTP, the routes read from the app's own route
table: a route added without an access rule makes `create_app` fail (so every test fails), and
one added with a rule is probed here by every role without anyone listing it.

The server requires tokens (`require_auth`, as beyond loopback). Principals: no token, a user
of each role, and a developer limited to another workspace (`outsider`). A route is probed with
no body: the guard answers before the body is read, and where it lets the request through the
handler refuses the empty body or the made-up ids with a 4xx of its own, never 401 or 403."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from litestar import get
from serving_harness import running_server, wait_ready

from appliance.access.roles import Role
from appliance.access.rules import RULE
from appliance.cli import cli
from appliance.server.app import _check_rules, create_app
from appliance.services import Services

FILLED = {"workspace": "ads", "name": "captions", "endpoint": "captions", "version": "1"}


def _routes(services: Services) -> list[tuple[str, str, Any]]:
    """(method, path template, rule) of every handler the app serves."""
    app = create_app(services, restore=False, schedule=False)
    found = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            for method in handler.http_methods:
                if method not in ("OPTIONS", "HEAD"):
                    found.append((method, route.path_format, handler.opt))
    return found


def _url(template: str) -> str:
    url = template
    for param, value in FILLED.items():
        url = url.replace("{" + param + "}", value)
    while "{" in url:  # any other id: one nobody has
        start, end = url.index("{"), url.index("}")
        url = url[:start] + "no-such-id" + url[end + 1 :]
    return url


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: Path
) -> Iterator[tuple[Services, httpx.Client, dict[str, str]]]:
    """A served home requiring tokens, with `captions` (a tiny BERT) deployed in `ads`, and
    one token per principal."""
    home = tmp_path_factory.mktemp("roles") / "home"
    runner = CliRunner()
    env = {"APPLIANCE_HOME": str(home)}
    for args in (
        ["workspace", "create", "ads"],
        ["workspace", "create", "other"],
        ["model", "register", "ads", "cls", str(tiny_model)],
        ["deploy", "ads", "captions", "cls@1"],
    ):
        result = runner.invoke(cli, args, env=env)
        assert result.exit_code == 0, result.output
    with Services.open(home=home, require_auth=True) as services:
        tokens = {role.name: services.users.add(role.name, role)[1] for role in Role}
        tokens["outsider"] = services.users.add("outsider", Role.developer, "other")[1]
        with running_server(services) as http:
            wait_ready(http)
            yield services, http, tokens


def _ask(http: httpx.Client, method: str, url: str, token: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return http.request(method, url, headers=headers)


def test_every_route_declares_a_rule_and_every_role_meets_it(
    server: tuple[Services, httpx.Client, dict[str, str]],
) -> None:
    services, http, tokens = server
    routes = _routes(services)
    assert len(routes) > 60  # the whole table, the registry routes included
    assert all(RULE in opt for _, _, opt in routes)
    public = [(m, p) for m, p, opt in routes if opt[RULE] is None]
    assert {p for _, p in public} == {"/v2/health/live", "/v2/health/ready"}
    failures = []
    for method, template, opt in routes:
        url, rule = _url(template), opt[RULE]
        anonymous = _ask(http, method, url, None)
        if rule is None:
            if anonymous.status_code != 200:
                failures.append(f"{method} {template}: public, but {anonymous.status_code}")
            continue
        if anonymous.status_code != 401:
            failures.append(f"{method} {template}: no token got {anonymous.status_code}")
        for role in Role:
            answer = _ask(http, method, url, tokens[role.name])
            denied = answer.status_code in (401, 403)
            if role < rule and answer.status_code != 403:
                failures.append(f"{method} {template}: {role.name} < {rule.name} got "
                                f"{answer.status_code}")  # fmt: skip
            if role >= rule and denied:
                failures.append(f"{method} {template}: {role.name} refused {answer.text}")
        limited = "{workspace}" in template or opt.get("every_workspace")
        outsider = _ask(http, method, url, tokens["outsider"])
        if limited and outsider.status_code != 403:
            failures.append(f"{method} {template}: outsider got {outsider.status_code}")
        if opt.get("scope") and outsider.status_code not in (403, 404):
            failures.append(f"{method} {template}: outsider reached {outsider.status_code}")
    assert not failures, "\n".join(failures)


def test_a_user_of_one_workspace_cannot_predict_rate_or_read_another_s(
    server: tuple[Services, httpx.Client, dict[str, str]],
) -> None:
    services, http, tokens = server
    services.users.add("app", Role.predictor, "ads")
    app = services.users.add("app-other", Role.predictor, "other")[1]
    admin = {"authorization": f"Bearer {tokens['admin']}"}
    answer = http.post("/v1/endpoints/captions/predict", json={"text": "a red shoe"}, headers=admin)
    assert answer.status_code == 200, answer.text
    prediction = answer.json()["id"]
    deadline = time.monotonic() + 10  # captured a moment after the answer
    while http.get(f"/v1/predictions/{prediction}", headers=admin).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    theirs = {"authorization": f"Bearer {app}"}
    for method, url, body in (
        ("POST", "/v1/endpoints/captions/predict", {"text": "a red shoe"}),
        ("POST", f"/v1/predictions/{prediction}/feedback", {"rating": 1}),
        ("GET", f"/v1/predictions/{prediction}", None),
        ("GET", "/v2/models/captions", None),
    ):
        refused = http.request(method, url, json=body, headers=theirs)
        assert refused.status_code == 403, (url, refused.text)
        assert "may use only the workspace 'other'" in refused.json()["error"]
    listed = http.get("/v1/deployments", headers=theirs)
    assert listed.status_code == 200 and listed.json() == []  # only its workspace's
    assert [d["endpoint"] for d in http.get("/v1/deployments", headers=admin).json()] == [
        "captions"
    ]


def test_a_revoked_token_stops_working_and_wrong_tokens_are_throttled(
    server: tuple[Services, httpx.Client, dict[str, str]],
) -> None:
    services, http, _ = server
    token = services.users.add("temp", Role.viewer)[1]
    signed = {"authorization": f"Bearer {token}"}
    assert http.get("/v1/deployments", headers=signed).status_code == 200
    services.users.revoke("temp")
    time.sleep(1.1)  # a running server keeps a lookup for at most a second
    answer = http.get("/v1/deployments", headers=signed)
    assert answer.status_code == 401 and "revoked" in answer.json()["error"]


def test_writes_carry_their_author_into_events_and_the_audit(
    server: tuple[Services, httpx.Client, dict[str, str]],
) -> None:
    services, http, tokens = server
    developer = {"authorization": f"Bearer {tokens['developer']}"}
    viewer = {"authorization": f"Bearer {tokens['viewer']}"}
    job = {"name": "tidy", "kind": "housekeeping", "trigger": "every 1h"}
    assert http.post("/v1/workspaces/ads/jobs", json=job, headers=viewer).status_code == 403
    assert http.post("/v1/workspaces/ads/jobs", json=job, headers=developer).status_code == 201
    deploy = {"workspace": "ads", "endpoint": "captions", "model": "cls@1"}
    assert http.post("/v1/deployments", json=deploy, headers=developer).status_code == 201
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the audit row is written after the answer
        result = CliRunner().invoke(
            cli,
            ["audit", "ads", "--json", "--limit", "5000"],
            env={"APPLIANCE_HOME": str(services.settings.home)},
        )
        if '"POST /v1/deployments' in result.output:
            break
        time.sleep(0.1)
    assert result.exit_code == 0, result.output
    trail = json.loads(result.output)
    requests = [(e["actor"], e["what"]) for e in trail if e["source"] == "http"]
    assert ("viewer", "POST /v1/workspaces/ads/jobs → 403") in requests
    assert ("developer", "POST /v1/workspaces/ads/jobs → 201") in requests
    assert ("developer", "POST /v1/deployments → 201") in requests  # the body's workspace
    events = [(e["actor"], e["what"]) for e in trail if e["source"] == "event"]
    assert any(actor == "developer" and what.startswith("deploy") for actor, what in events)
    # the CLI on the box is `local`
    assert any(actor == "local" and what.startswith("deploy") for actor, what in events)


def test_the_cli_on_the_box_is_local_with_the_home_s_key(
    server: tuple[Services, httpx.Client, dict[str, str]],
) -> None:
    services, http, _ = server
    assert http.get("/v1/deployments").status_code == 401  # a stranger, without the key
    env = {"APPLIANCE_HOME": str(services.settings.home)}
    result = CliRunner().invoke(cli, ["deploy", "ads", "captions", "cls@1"], env=env)
    assert result.exit_code == 0, result.output  # through the running server, as `local`
    sql = "SELECT actor, status FROM audit WHERE path = '/v1/deployments' AND actor = 'local'"
    deadline = time.monotonic() + 10
    while not services.registry.query(sql):  # the audit row is written after the answer
        assert time.monotonic() < deadline, result.output
        time.sleep(0.05)
    assert services.registry.query(sql) == [{"actor": "local", "status": 201}]
    key = (services.settings.home / "local.key").stat()
    assert key.st_mode & 0o077 == 0  # only the home's owner reads it


def test_the_box_acting_for_a_web_user_is_recorded_as_that_user_with_its_role(
    server: tuple[Services, httpx.Client, dict[str, str]],
) -> None:
    """`appliance web` runs the TUI for a browser's user with APPLIANCE_ACTOR and
    APPLIANCE_ROLE set; the TUI's client sends them with the home's local key."""
    services, http, tokens = server
    key = (services.settings.home / "local.key").read_text().strip()
    job = {"name": "nightly", "kind": "housekeeping", "trigger": "every 1h"}
    as_viewer = {"authorization": f"Bearer {key}", "x-appliance-actor": "ann"}
    as_viewer["x-appliance-role"] = "viewer"
    refused = http.post("/v1/workspaces/ads/jobs", json=job, headers=as_viewer)
    assert refused.status_code == 403 and "'ann' is a viewer" in refused.json()["error"]
    # Only the local key may speak for someone: a user's token with the header is itself.
    viewer = {"authorization": f"Bearer {tokens['viewer']}", "x-appliance-actor": "ann"}
    viewer["x-appliance-role"] = "admin"
    still = http.post("/v1/workspaces/ads/jobs", json=job, headers=viewer)
    assert still.status_code == 403 and "'viewer' is a viewer" in still.json()["error"]
    as_developer = as_viewer | {"x-appliance-role": "developer"}
    assert http.post("/v1/workspaces/ads/jobs", json=job, headers=as_developer).status_code == 201
    sql = "SELECT actor, status FROM audit WHERE actor = 'ann' ORDER BY id"
    deadline = time.monotonic() + 10
    while len(services.registry.query(sql)) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert [r["status"] for r in services.registry.query(sql)] == [403, 201]


def test_a_route_without_a_rule_is_refused_at_start(services: Services) -> None:
    @get("/v1/forgotten", sync_to_thread=False)
    def forgotten() -> str:
        return "open"

    app = create_app(services, restore=False, schedule=False)
    app.register(forgotten)
    with pytest.raises(RuntimeError, match="/v1/forgotten declares no access rule"):
        _check_rules(app)


def test_predict_rate_limit_per_token(isolated_home: Path, tiny_model: Path) -> None:
    with Services.open(home=isolated_home, predict_rate_limit=2) as services:
        services.workspaces.create("ads")
        token = services.users.add("app", Role.predictor)[1]
        with running_server(services, restore=False) as http:
            signed = {"authorization": f"Bearer {token}"}
            answers = [
                http.post("/v1/endpoints/none/predict", json={}, headers=signed) for _ in range(4)
            ]
            # a burst of 2 reaches the route (404: nothing deployed), then 429 with Retry-After
            assert [a.status_code for a in answers] == [404, 404, 429, 429]
            assert int(answers[2].headers["retry-after"]) >= 1
            assert "predict_rate_limit" in answers[2].json()["error"]
            # untokened requests on loopback (the box itself) are not limited
            assert http.post("/v1/endpoints/none/predict", json={}).status_code == 404
