"""The monitoring API: feedback on a prediction, the captured prediction itself, per-workspace
summaries, drift, alerts and DORA figures, and Prometheus `/metrics`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import anyio
from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from appliance.monitoring import alerts, report
from appliance.monitoring.monitor import Monitor
from appliance.monitoring.predictions import parse_window
from appliance.services import Services

AnyRequest = Request[Any, Any, Any]
T = TypeVar("T")


@dataclass
class FeedbackRequest:
    rating: int | None = None
    """1 (bad) to 5 (good)."""
    thumb: str | None = None
    """'up' or 'down'."""
    comment: str = ""


class FeedbackController(Controller):
    path = "/v1/predictions"
    tags = ["monitoring"]

    @post("/{prediction_id:str}/feedback", opt={"predict": True}, status_code=201)
    async def feedback(
        self, request: AnyRequest, prediction_id: FromPath[str], data: JSONBody[FeedbackRequest]
    ) -> dict[str, Any]:
        """Rate a prediction (rating 1-5 and/or thumb up/down, optional comment). Answers once
        the feedback is durably committed; an unknown prediction id is 404."""
        monitor: Monitor = request.app.state.monitor
        services: Services = request.app.state.services

        def store() -> dict[str, Any]:
            monitor.capture.flush()  # the prediction may still be on its way to the disk
            return services.predictions.add_feedback(
                prediction_id, data.rating, data.thumb, data.comment
            )

        return await anyio.to_thread.run_sync(store)

    @get("/{prediction_id:str}")
    async def prediction(self, request: AnyRequest, prediction_id: FromPath[str]) -> dict[str, Any]:
        """A captured prediction: features, output, latency split, warnings."""
        services: Services = request.app.state.services
        return await _settled(request, services.predictions.get, prediction_id)


async def _settled(request: AnyRequest, read: Callable[..., T], *args: Any) -> T:
    """`read(*args)` on a worker thread once the predictions answered so far are written: the
    capture batches its writes, and a client reading right after predicting expects its own."""
    monitor: Monitor = request.app.state.monitor

    def flushed() -> T:
        monitor.capture.flush()
        return read(*args)

    return await anyio.to_thread.run_sync(flushed)


class MonitoringController(Controller):
    path = "/v1/workspaces/{workspace:str}/monitoring"
    tags = ["monitoring"]

    @get("/summary")
    async def summary(
        self,
        request: AnyRequest,
        workspace: FromPath[str],
        endpoint: FromQuery[str | None] = None,
        window: FromQuery[str] = "1h",
    ) -> dict[str, Any]:
        """Per endpoint: predictions, errors, latency percentiles, confidence, warnings,
        ratings, and their trends over the window (e.g. 15m, 1h, 7d)."""
        services: Services = request.app.state.services
        seconds = parse_window(window)
        return await _settled(request, report.summary, services, workspace, endpoint, seconds)

    @get("/drift")
    async def drift(
        self,
        request: AnyRequest,
        workspace: FromPath[str],
        endpoint: FromQuery[str],
        window: FromQuery[str] = "1h",
    ) -> dict[str, Any]:
        """PSI and KS per input feature of the endpoint's recent traffic against the training
        data of the version it serves."""
        services: Services = request.app.state.services
        seconds = parse_window(window)
        return await _settled(request, report.drift, services, workspace, endpoint, seconds)

    @get("/alerts")
    async def alerts(self, request: AnyRequest, workspace: FromPath[str]) -> dict[str, Any]:
        """Each rule's state per endpoint, and the recent alert events."""
        services: Services = request.app.state.services

        def read() -> dict[str, Any]:
            return {
                "rules": alerts.current(services, workspace),
                "events": alerts.history(services, workspace),
            }

        return await anyio.to_thread.run_sync(read)

    @get("/feedback")
    async def feedback(
        self, request: AnyRequest, workspace: FromPath[str], endpoint: FromQuery[str | None] = None
    ) -> dict[str, Any]:
        """The latest feedback and its summary."""
        services: Services = request.app.state.services

        def read() -> dict[str, Any]:
            return {
                "summary": services.predictions.feedback_summary(workspace, endpoint),
                "recent": services.predictions.feedback(workspace, endpoint),
            }

        return await anyio.to_thread.run_sync(read)

    @get("/dora")
    async def dora(
        self, request: AnyRequest, workspace: FromPath[str], since: FromQuery[str] = "30d"
    ) -> dict[str, Any]:
        """Deployment frequency, lead time for changes, change failure rate and time to
        restore over the period (e.g. 7d, 30d)."""
        services: Services = request.app.state.services
        start = datetime.now(UTC) - timedelta(seconds=parse_window(since))
        return await anyio.to_thread.run_sync(report.dora, services, workspace, start)


@get("/metrics", tags=["monitoring"], media_type="text/plain; version=0.0.4; charset=utf-8")
async def metrics(request: AnyRequest) -> Response[bytes]:
    """Prometheus metrics in the text exposition format."""
    monitor: Monitor = request.app.state.monitor
    body = await anyio.to_thread.run_sync(monitor.metrics.render)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
