"""`POST /v1/endpoints/{name}/predict`: the endpoint's task answers one input, or a batch."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import msgspec
from litestar import Controller, Request, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from msgspec import UNSET, UnsetType

from appliance.access.roles import Role
from appliance.access.rules import BY_TASK, allow
from appliance.errors import ApplianceError
from appliance.monitoring.monitor import Monitor
from appliance.server.inputs import read_predict_request
from appliance.serving.service import PredictionResult, Serving

AnyRequest = Request[Any, Any, Any]


class PredictAnswer(msgspec.Struct, kw_only=True):
    """One prediction: the task's answer fields, then what every answer carries.

    What a task answers depends on the task, so each task's own fields are optional and absent
    (not null) from the other tasks' answers: image-to-text answers `description`,
    text-classification `label` and `scores` (every label's score, best first). A task added as
    a plug-in (the `appliance.tasks` entry points) may answer fields declared nowhere here: they
    are answered all the same, undocumented (see `_with_fields`)."""

    description: str | UnsetType = UNSET
    """image-to-text: the generated description."""
    label: str | UnsetType = UNSET
    """text-classification: the most likely label."""
    scores: dict[str, float] | UnsetType = UNSET
    """text-classification: each label's score, best first."""
    id: str
    """The prediction's id, for its feedback (`POST /v1/predictions/{id}/feedback`)."""
    endpoint: str
    model: str
    version: int
    confidence: float
    """Calibrated: the chance that the answer is right."""
    warnings: list[str]
    """e.g. `uncertain` (the confidence is below the version's threshold, chosen at evaluation),
    and `low_light` with it when the photo is dark."""
    reasons: dict[str, str]
    """Each warning's reason, in words an app can show to the person who sent the input."""
    latency_ms: float
    queue_ms: float
    inference_ms: float
    batch_size: int
    """The size of the batch the model answered this input in."""
    cold_start_ms: float | UnsetType = UNSET
    """Present only when the endpoint was cold (unloaded after its keep-alive, or to make room)
    and this request waited for its model to load: the milliseconds it waited, which
    `latency_ms` includes."""


class PredictBatch(msgspec.Struct):
    """Several inputs (multipart or JSON `instances`): one answer each, in their order."""

    predictions: list[PredictAnswer]


TASK_FIELDS = ("description", "label", "scores")
COMMON_FIELDS = tuple(f for f in PredictAnswer.__struct_fields__ if f not in TASK_FIELDS)


@dataclass(frozen=True)
class Predicting:
    """What the predict route needs, as one dependency: serving, and the monitor that counts the
    requests it refuses. One, because Litestar resolves a handler's several dependencies in a
    task group, ~55 µs a request (measured) on the hottest route, where one costs ~1 µs."""

    serving: Serving
    monitor: Monitor


class PredictController(Controller):
    path = "/v1/endpoints"
    tags = ["predict"]

    @post(
        "/{name:str}/predict",
        opt=allow(
            Role.predictor,
            content_types=BY_TASK,
            scope=("endpoint", "name"),
            predict=True,
            audit=False,
        ),
        status_code=200,
    )
    async def predict(
        self,
        request: AnyRequest,
        name: FromPath[str],
        predicting: NamedDependency[Predicting],
    ) -> PredictAnswer | PredictBatch:
        """Answer with the endpoint's model, by its task. image-to-text (a captioner): send a
        photo as multipart `image`, raw `image/*` bytes, or base64 JSON `{"image": ...}`;
        `keywords` (optional) condition the description. Several inputs (multipart or JSON
        `instances`) answer `{"predictions": [...]}`."""
        serving = predicting.serving
        try:
            task = serving.task_of(name)
            parsed = await read_predict_request(
                request, task, serving.services.settings, serving.off_loop
            )
            results = await serving.predict(name, parsed.inputs)
        except ApplianceError as exc:
            # Unknown names share one label: a label per name a caller makes up grows without end.
            known = any(live.endpoint == name for live in serving.pool.live())
            label = name if known else "(unknown)"
            predicting.monitor.metrics.reject(label, exc.http_status)
            raise
        if parsed.batch:
            return PredictBatch([_answer(r) for r in results])
        return _answer(results[0])


def _answer(result: PredictionResult) -> PredictAnswer:
    try:
        return PredictAnswer(
            **result.output, id=result.id, endpoint=result.endpoint, model=result.model,
            version=result.version, confidence=result.confidence, warnings=result.warnings,
            reasons=result.reasons, latency_ms=result.latency_ms, queue_ms=result.queue_ms,
            inference_ms=result.inference_ms, batch_size=result.batch_size,
            cold_start_ms=UNSET if result.cold_start_ms is None else result.cold_start_ms,
        )  # fmt: skip
    except TypeError:  # a field PredictAnswer does not declare (or one named like a common one)
        common = {name: getattr(result, name) for name in COMMON_FIELDS}
        fields = result.output | {k: v for k, v in common.items() if v is not None}
        return _with_fields(frozenset(fields) - frozenset(PredictAnswer.__struct_fields__))(
            **fields
        )


@lru_cache(maxsize=64)
def _with_fields(names: frozenset[str]) -> type[PredictAnswer]:
    """PredictAnswer with a plug-in task's other answer fields, made once per set of names."""
    made: type[PredictAnswer] = msgspec.defstruct(
        "PluginPredictAnswer",
        [(name, Any, UNSET) for name in sorted(names)],
        bases=(PredictAnswer,),
        kw_only=True,
    )  # type: ignore[assignment]  # defstruct is typed as making a plain Struct
    return made
