"""The OpenAPI schema the real server serves (/schema/openapi.json) documents every JSON answer
of /v1 and /v2: each names its properties (never a bare object), and the answers the server
gives validate against it with no property it does not declare. The tiny colour recipe is the
model."""

from __future__ import annotations

import base64
import copy
import io
import random
import time
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import msgspec
import pytest
from serving_harness import running_server, wait_ready

from appliance.datasets.synthetic import ProductAttributes, darken, generate, render
from appliance.runs.launcher import start_run
from appliance.server import predict
from appliance.services import Services
from appliance.serving.options import DeployOptions
from appliance.serving.service import PredictionResult, Serving
from appliance.tasks import Prediction, get_task
from appliance.tasks.image_to_text import ImageToText
from appliance.tasks.text_classification import TextClassification

COLOUR = Path(__file__).parent / "recipes" / "colour"
PREDICT = "/v1/endpoints/{name}/predict"
METHODS = ("get", "post", "put", "patch", "delete")

# The answers the server must document, and properties each must name. A list answer names
# its items'; the predict answer is one prediction or a batch of them.
DOCUMENTED = [
    ("post", PREDICT, {"id", "confidence", "warnings", "latency_ms", "description", "label", "scores"}),
    ("get", "/v1/deployments", {"endpoint", "version", "loaded", "torch_threads", "quantization"}),
    ("post", "/v1/deployments", {"endpoint", "version", "loaded", "model"}),
    ("post", "/v1/deployments/{endpoint}/rollback", {"endpoint", "version", "loaded"}),
    ("post", "/v1/predictions/{prediction_id}/feedback", {"id", "prediction_id", "rating", "thumb"}),
    ("get", "/v1/predictions/{prediction_id}", {"id", "features", "output", "latency_ms"}),
    ("get", "/v1/workspaces/{workspace}/monitoring/summary", {"workspace", "window_s", "endpoints"}),
    ("get", "/v1/workspaces/{workspace}/monitoring/drift", {"features", "drifted", "reference", "trend"}),
    ("get", "/v1/workspaces/{workspace}/monitoring/slices", {"overall", "slices", "left_out"}),
    ("get", "/v1/workspaces/{workspace}/monitoring/alerts", {"rules", "events"}),
    ("get", "/v1/workspaces/{workspace}/monitoring/feedback", {"summary", "recent"}),
    ("get", "/v1/workspaces/{workspace}/monitoring/dora", {"deployments", "level", "lead_time_hours"}),
    ("get", "/v1/workspaces/{workspace}/jobs", {"name", "kind", "trigger", "enabled", "last_status"}),
    ("post", "/v1/workspaces/{workspace}/jobs", {"name", "kind", "trigger", "params"}),
    ("get", "/v1/workspaces/{workspace}/jobs/{name}", {"name", "trigger", "runs"}),
    ("post", "/v1/workspaces/{workspace}/jobs/{name}/pause", {"name", "enabled"}),
    ("post", "/v1/workspaces/{workspace}/jobs/{name}/run", {"job_run"}),
    ("post", "/v1/job-runs/{job_run_id}/approve", {"id", "status", "detail", "run_id"}),
    ("get", "/v2/models/{name}", {"name", "versions", "platform", "inputs", "outputs", "parameters"}),
    ("post", "/v2/models/{name}/infer", {"model_name", "model_version", "id", "outputs"}),
    ("get", "/v2/health/ready", {"ready"}),
]  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """colour@1 deployed as `captions`; the monitor evaluates its rules every second."""
    home = tmp_path_factory.mktemp("schema-home")
    with Services.open(home=home) as services:
        services.workspaces.create("ads")
        photos = generate(home.parent / "schema-photos", count=40, seed=6).path
        services.datasets.add("ads", "photos", photos)
        services.recipes.add("ads", COLOUR)
        run = start_run(services, "ads", "colour", "photos", {}).wait()
        assert run["status"] == "succeeded", run["error"]
        Serving(services).deploy("ads", "captions", "colour@1", DeployOptions())
    settings = {"monitor_interval_s": 1, "drift_min_samples": 5}
    with Services.open(home=home, **settings) as services, running_server(services) as client:
        wait_ready(client)
        yield client


@pytest.fixture(scope="module")
def openapi(server: httpx.Client) -> dict[str, Any]:
    answer = server.get("/schema/openapi.json")
    assert answer.status_code == 200, answer.text
    schema: dict[str, Any] = answer.json()
    return schema


def answer_schema(openapi: dict[str, Any], method: str, path: str) -> dict[str, Any] | None:
    """The JSON schema of the operation's 2xx answer (None when it answers no JSON)."""
    responses = openapi["paths"][path][method]["responses"]
    (status,) = [s for s in responses if s.startswith("2")]
    content = responses[status].get("content", {})
    return content["application/json"]["schema"] if "application/json" in content else None


def shapes(openapi: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The object schemas an answer can be: references followed, through alternatives and
    into a list's items."""
    while "$ref" in schema:
        schema = openapi["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    if "oneOf" in schema or "anyOf" in schema:
        return [s for sub in schema.get("oneOf", schema.get("anyOf")) for s in shapes(openapi, sub)]
    if schema.get("type") == "array":
        return shapes(openapi, schema["items"])
    return [schema]


def test_every_json_answer_names_its_properties(openapi: dict[str, Any]) -> None:
    checked = 0
    for path, item in openapi["paths"].items():
        if not path.startswith(("/v1", "/v2")):
            continue
        for method in METHODS:
            if method not in item or (schema := answer_schema(openapi, method, path)) is None:
                continue
            for shape in shapes(openapi, schema):
                assert shape.get("type") == "object" and shape.get("properties"), (
                    f"{method.upper()} {path} answers an undocumented object: {shape}"
                )
            checked += 1
    assert checked >= 25


@pytest.mark.parametrize(("method", "path", "expected"), DOCUMENTED)
def test_the_answer_declares_its_fields(
    openapi: dict[str, Any], method: str, path: str, expected: set[str]
) -> None:
    schema = answer_schema(openapi, method, path)
    assert schema is not None, f"{method.upper()} {path} documents no JSON answer"
    declared = {name for shape in shapes(openapi, schema) for name in shape.get("properties", {})}
    assert expected <= declared, f"{method.upper()} {path} lacks {expected - declared}"


def test_a_batch_answer_is_a_list_of_predictions(openapi: dict[str, Any]) -> None:
    single, batch = shapes(openapi, answer_schema(openapi, "post", PREDICT) or {})
    assert set(batch["properties"]) == {"predictions"}
    (items,) = shapes(openapi, batch["properties"]["predictions"])
    assert items == single and {"id", "batch_size", "queue_ms"} <= set(items["properties"])
    # A task's own fields are optional: a captioner's answer has no label.
    assert {"description", "label", "scores"}.isdisjoint(single["required"])


def strict(openapi: dict[str, Any], schema: dict[str, Any]) -> jsonschema_rs.Validator:
    """A validator of `schema` (with the document's components) that also refuses a property
    an object schema does not name."""
    root = copy.deepcopy({**schema, "components": openapi["components"]})

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node:
                node.setdefault("additionalProperties", False)
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(root)
    return jsonschema_rs.Draft202012Validator(root)


def test_the_answers_are_what_the_schema_says(
    server: httpx.Client, openapi: dict[str, Any]
) -> None:
    checked: set[tuple[str, str]] = set()

    def call(method: str, route: str, path: str, status: int = 200, **kw: Any) -> Any:
        answer = server.request(method, path, **kw)
        assert answer.status_code == status, (method, path, answer.text)
        schema = answer_schema(openapi, method.lower(), route)
        assert schema is not None, route
        body = answer.json()
        errors = [str(e) for e in strict(openapi, schema).iter_errors(body)]
        assert not errors, f"{method} {path}: {body}\n" + "\n".join(errors)
        checked.add((method.lower(), route))
        return body

    deploy = {"workspace": "ads", "endpoint": "captions", "model": "colour@1"}
    call("POST", "/v1/deployments", "/v1/deployments", 201, json=deploy)
    wait_ready(server)
    one = call("POST", PREDICT, "/v1/endpoints/captions/predict", json={"image": _b64(_png())})
    assert "label" not in one and one["description"]
    instances = [{"image": _b64(_png(dark=i % 3 > 0, seed=i))} for i in range(6)]
    call("POST", PREDICT, "/v1/endpoints/captions/predict", json={"instances": instances})
    rated = f"/v1/predictions/{one['id']}"
    call("POST", "/v1/predictions/{prediction_id}/feedback", f"{rated}/feedback", 201,
         json={"rating": 4, "thumb": "up", "comment": "fine"})  # fmt: skip
    call("GET", "/v1/predictions/{prediction_id}", rated)
    call("GET", "/v1/deployments", "/v1/deployments")

    monitoring = "/v1/workspaces/{workspace}/monitoring"
    call("GET", f"{monitoring}/summary", "/v1/workspaces/ads/monitoring/summary")
    sliced = call("GET", f"{monitoring}/slices", "/v1/workspaces/ads/monitoring/slices",
                  params={"endpoint": "captions", "min_rows": 1})  # fmt: skip
    assert sliced["slices"] and sliced["overall"]["predictions"] == 7
    drift = call("GET", f"{monitoring}/drift", "/v1/workspaces/ads/monitoring/drift",
                 params={"endpoint": "captions"})  # fmt: skip
    assert drift["features"] and drift["reference"] == "photos@1"
    deadline = time.time() + 30  # the monitor rates the dark photos: low_light_rate fires
    while time.time() < deadline:
        alerts = call("GET", f"{monitoring}/alerts", "/v1/workspaces/ads/monitoring/alerts")
        if alerts["events"]:
            break
        time.sleep(0.2)
    assert alerts["rules"] and alerts["events"], alerts
    feedback = call("GET", f"{monitoring}/feedback", "/v1/workspaces/ads/monitoring/feedback")
    assert feedback["recent"][0]["prediction_id"] == one["id"]
    call("GET", f"{monitoring}/dora", "/v1/workspaces/ads/monitoring/dora")

    jobs = "/v1/workspaces/{workspace}/jobs"
    job = {"name": "tidy", "kind": "housekeeping", "trigger": "every 1d"}
    call("POST", jobs, "/v1/workspaces/ads/jobs", 201, json=job)
    call("POST", f"{jobs}/{{name}}/pause", "/v1/workspaces/ads/jobs/tidy/pause")
    call("POST", f"{jobs}/{{name}}/resume", "/v1/workspaces/ads/jobs/tidy/resume")
    started = call("POST", f"{jobs}/{{name}}/run", "/v1/workspaces/ads/jobs/tidy/run", 202)
    shown = call("GET", f"{jobs}/{{name}}", "/v1/workspaces/ads/jobs/tidy")
    assert shown["runs"][0]["id"] == started["job_run"]
    call("GET", jobs, "/v1/workspaces/ads/jobs")

    call("GET", "/v2", "/v2")
    call("GET", "/v2/health/live", "/v2/health/live")
    call("GET", "/v2/health/ready", "/v2/health/ready")
    call("GET", "/v2/models/{name}", "/v2/models/captions")
    call(
        "GET", "/v2/models/{name}/versions/{version}/ready", "/v2/models/captions/versions/1/ready"
    )
    tensors = [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [_b64(_png())]}]
    infer = "/v2/models/{name}/infer"
    assert (
        call("POST", infer, "/v2/models/captions/infer", json={"id": "r1", "inputs": tensors})["id"]
        == "r1"
    )
    assert "id" not in call("POST", infer, "/v2/models/captions/infer", json={"inputs": tensors})
    # All the documented answers but two that need more than one version, or a held one.
    unchecked = {(method, path) for method, path, _ in DOCUMENTED} - checked
    assert unchecked == {
        ("post", "/v1/deployments/{endpoint}/rollback"), ("post", "/v1/job-runs/{job_run_id}/approve"),
    }  # fmt: skip


def result(output: dict[str, Any]) -> PredictionResult:
    return PredictionResult(
        id="p1", endpoint="e", model="m", version=1, output=output, confidence=0.9,
        warnings=[], reasons={}, latency_ms=1.0, queue_ms=0.1, inference_ms=0.5, batch_size=1,
    )  # fmt: skip


def test_the_predict_answer_declares_every_public_field_of_a_prediction() -> None:
    public = {f.name for f in fields(PredictionResult)} - {"output", "features"}
    assert set(predict.COMMON_FIELDS) == public


def test_the_built_in_tasks_answer_declared_fields() -> None:
    # Every task's OIP outputs but the confidence are fields of its predict answer too.
    for name in ("image-to-text", "text-classification"):
        outputs = {f.name for f in get_task(name).outputs} - {"confidence"}
        assert outputs <= set(predict.TASK_FIELDS), name
    caption = ImageToText().answer(Prediction({"description": "red mug"}, 0.9))
    label = TextClassification().answer(
        Prediction({"label": "mug", "scores": {"lamp": 0.1, "mug": 0.9}}, 0.9)
    )
    for output in (caption, label):
        answer = predict._answer(result(output))
        assert type(answer) is predict.PredictAnswer
        encoded = msgspec.json.decode(msgspec.json.encode(answer))
        assert encoded == output | {"id": "p1", "endpoint": "e", "model": "m", "version": 1,
                                    "confidence": 0.9, "warnings": [], "reasons": {},
                                    "latency_ms": 1.0,
                                    "queue_ms": 0.1, "inference_ms": 0.5, "batch_size": 1}  # fmt: skip
    ranked = msgspec.json.decode(msgspec.json.encode(predict._answer(result(label))))["scores"]
    assert list(ranked) == ["mug", "lamp"]  # best first, as the task ranked them


def test_a_plug_in_task_answers_its_undeclared_fields_as_before() -> None:
    answer = predict._answer(result({"summary": "two mugs", "tokens": 3}))
    assert isinstance(answer, predict.PredictAnswer)
    body = msgspec.json.decode(msgspec.json.encode(answer))
    assert body["summary"] == "two mugs" and body["tokens"] == 3 and body["id"] == "p1"
    assert "description" not in body
    # A task field named like a common one: the common field wins, as it always did.
    body = msgspec.json.decode(msgspec.json.encode(predict._answer(result({"id": "mine"}))))
    assert body["id"] == "p1"


def _png(dark: bool = False, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    image = render(ProductAttributes("mug", "red", "striped", "white", "normal"), size=64, rng=rng)
    if dark:
        image = darken(image, rng)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
