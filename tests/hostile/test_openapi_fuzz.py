"""Schemathesis against our own OpenAPI schema (docs/openapi.json, kept current by
tests/test_docs.py): generated requests for every operation, sent to the real server over
loopback with a model deployed. Whatever they hold, no answer may be a server error."""

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

from appliance.datasets.synthetic import generate
from appliance.runs.launcher import start_run, wait_run
from appliance.services import Services
from appliance.serving.options import DeployOptions
from appliance.serving.service import Serving

ROOT = Path(__file__).resolve().parents[2]
schema = schemathesis.openapi.from_dict(json.loads((ROOT / "docs" / "openapi.json").read_text()))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    home = tmp_path_factory.mktemp("fuzz-home")
    with Services.open(home=home) as services:
        services.workspaces.create("ads")
        photos = generate(home.parent / "fuzz-photos", count=30, seed=5).path
        services.datasets.add("ads", "photos", photos)
        services.recipes.add("ads", ROOT / "tests" / "recipes" / "colour")
        run = wait_run(services, start_run(services, "ads", "colour", "photos", {}))
        assert run["status"] == "succeeded", run["error"]
        Serving(services).deploy("ads", "captions", "colour@1", DeployOptions())
        with running_server(services) as client:
            wait_ready(client)
            yield client


@schema.parametrize()
@settings(
    max_examples=12, deadline=None, derandomize=True,
    suppress_health_check=list(HealthCheck),
)  # fmt: skip
def test_no_request_makes_a_server_error(case: schemathesis.Case, server: httpx.Client) -> None:
    case.call_and_validate(base_url=str(server.base_url), checks=[not_a_server_error])
