"""Predictions over HTTP: feedback on a captured prediction, and the captured prediction
itself; and `settled`, the read that first lets the capture write what it holds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from appliance.access.roles import Role
from appliance.access.rules import allow
from appliance.errors import NotFound
from appliance.monitoring.monitor import Monitor
from appliance.server.answers import Answer
from appliance.services import Services

T = TypeVar("T")


@dataclass
class FeedbackRequest:
    rating: int | None = None
    """1 (bad) to 5 (good)."""
    thumb: str | None = None
    """'up' or 'down'."""
    comment: str = ""
    ignored_keywords: list[str] = field(default_factory=list)
    """Keywords the request gave that the answer left out (each one of the request's)."""


class Feedback(Answer):
    """One piece of feedback on a prediction, as stored."""

    id: int
    prediction_id: str
    rating: int | None
    thumb: str | None
    comment: str
    created_at: str
    ignored_keywords: list[str]


class RatedPrediction(Feedback):
    """Feedback with the prediction it rates."""

    endpoint: str
    description: str | None
    """The answer's one-line summary (a description; a label)."""
    confidence: float | None
    warnings: list[str]
    model_version_id: str | None


class CapturedPrediction(Answer):
    """A captured prediction: timing, the input's features (never the input), the answer."""

    id: str
    workspace_id: str
    workspace: str
    endpoint: str
    model_version_id: str | None
    created_at: str
    latency_ms: float | None
    queue_ms: float | None
    inference_ms: float | None
    batch_size: int | None
    features: dict[str, float]
    """The task's numeric input features (e.g. brightness; a text's length)."""
    keywords: str
    description: str | None
    output: dict[str, Any] | None
    """The task's answer fields, as the predict answer gave them (null for a failed one)."""
    confidence: float | None
    warnings: list[str]
    error: str | None


class FeedbackController(Controller):
    path = "/v1/predictions"
    tags = ["monitoring"]

    @post(
        "/{prediction_id:str}/feedback",
        opt=allow(Role.predictor, scope=("prediction", "prediction_id"), predict=True),
        status_code=201,
    )
    async def feedback(
        self,
        monitor: NamedDependency[Monitor],
        services: NamedDependency[Services],
        prediction_id: FromPath[str],
        data: JSONBody[FeedbackRequest],
    ) -> Feedback:
        """Rate a prediction (rating 1-5 and/or thumb up/down, optional comment, and the
        request's keywords the answer ignored). Answers once the feedback is durably committed;
        an unknown prediction id is 404, a keyword the request did not give is 400."""

        def store() -> dict[str, Any]:
            monitor.capture.flush()  # the prediction may still be on its way to the disk
            try:
                return services.predictions.add_feedback(
                    prediction_id, data.rating, data.thumb, data.comment, data.ignored_keywords
                )
            except NotFound:
                if (why := monitor.capture.not_captured(prediction_id)) is None:
                    raise
                raise NotFound(
                    f"prediction {prediction_id} was answered but not captured ({why}), so "
                    f"it cannot be rated"
                ) from None

        return msgspec.convert(await anyio.to_thread.run_sync(store), Feedback)

    @get("/{prediction_id:str}", opt=allow(Role.viewer, scope=("prediction", "prediction_id")))
    async def prediction(
        self,
        monitor: NamedDependency[Monitor],
        services: NamedDependency[Services],
        prediction_id: FromPath[str],
    ) -> CapturedPrediction:
        """A captured prediction: features, output, latency split, warnings."""
        row = await settled(monitor, services.predictions.get, prediction_id)
        return msgspec.convert(row, CapturedPrediction)


async def settled(monitor: NamedDependency[Monitor], read: Callable[..., T], *args: Any) -> T:
    """`read(*args)` on a worker thread once the predictions answered so far are written: the
    capture batches its writes, and a client reading right after predicting expects its own."""

    def flushed() -> T:
        monitor.capture.flush()
        return read(*args)

    return await anyio.to_thread.run_sync(flushed)
