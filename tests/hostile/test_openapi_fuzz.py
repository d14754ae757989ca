"""Schemathesis against our own OpenAPI schema (docs/openapi.json, kept current by
tests/test_docs.py): generated requests for every operation, sent to the real server over
loopback with a model deployed, authentication on (`require_auth`, as beyond loopback) and an
admin's token, so that every operation is reached past the access guard. Whatever they hold, no
answer may be a server error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from serving_harness import running_server, wait_ready

from appliance.access.roles import Role
from appliance.datasets.synthetic import generate
from appliance.runs.launcher import start_run
from appliance.services import Services
from appliance.serving.options import DeployOptions
from appliance.serving.service import Serving

ROOT = Path(__file__).resolve().parents[2]
schema = schemathesis.openapi.from_dict(json.loads((ROOT / "docs" / "openapi.json").read_text()))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, str]]:
    home = tmp_path_factory.mktemp("fuzz-home")
    with Services.open(home=home, require_auth=True) as services:
        services.workspaces.create("ads")
        photos = generate(home.parent / "fuzz-photos", count=30, seed=5).path
        services.datasets.add("ads", "photos", photos)
        services.recipes.add("ads", ROOT / "tests" / "recipes" / "colour")
        run = start_run(services, "ads", "colour", "photos", {}).wait()
        assert run["status"] == "succeeded", run["error"]
        Serving(services).deploy("ads", "captions", "colour@1", DeployOptions())
        token = services.users.add("fuzzer", Role.admin)[1]
        with running_server(services) as client:
            wait_ready(client)
            assert client.get("/v1/deployments").status_code == 401  # authentication is on
            yield client, token


@schema.parametrize()
@settings(
    max_examples=12, deadline=None, derandomize=True,
    suppress_health_check=list(HealthCheck),
)  # fmt: skip
def test_no_request_makes_a_server_error(
    case: schemathesis.Case, server: tuple[httpx.Client, str]
) -> None:
    client, token = server
    case.call_and_validate(
        base_url=str(client.base_url),
        headers={"authorization": f"Bearer {token}"},
        checks=[not_a_server_error],
    )
