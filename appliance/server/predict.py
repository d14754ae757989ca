"""`POST /v1/endpoints/{name}/predict`: the endpoint's task answers one input, or a batch."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from litestar import Controller, Request, post
from litestar.params import FromPath

from appliance.errors import ApplianceError
from appliance.server.inputs import read_predict_request
from appliance.serving.service import PredictionResult, Serving

AnyRequest = Request[Any, Any, Any]
PUBLIC_FIELDS = tuple(
    f.name for f in fields(PredictionResult) if f.name not in ("output", "features")
)


class PredictController(Controller):
    path = "/v1/endpoints"
    tags = ["predict"]

    @post("/{name:str}/predict", opt={"predict": True}, status_code=200)
    async def predict(self, request: AnyRequest, name: FromPath[str]) -> dict[str, Any]:
        """Answer with the endpoint's model, by its task. image-to-text (a captioner): send a
        photo as multipart `image`, raw `image/*` bytes, or base64 JSON `{"image": ...}`;
        `keywords` (optional) condition the description. Several inputs (multipart or JSON
        `instances`) answer `{"predictions": [...]}`."""
        serving: Serving = request.app.state.serving
        try:
            task = serving.task_of(name)
            parsed = await read_predict_request(
                request, task, request.app.state.settings, serving.off_loop
            )
            results = await serving.predict(name, parsed.inputs)
        except ApplianceError as exc:
            # Unknown names share one label: a label per name a caller makes up grows without end.
            known = any(live.endpoint == name for live in serving.pool.live())
            label = name if known else "(unknown)"
            request.app.state.monitor.metrics.reject(label, exc.http_status)
            raise
        if parsed.batch:
            return {"predictions": [_public(r) for r in results]}
        return _public(results[0])


def _public(result: PredictionResult) -> dict[str, Any]:
    # Field by field, not dataclasses.asdict: that deep-copies every value, on every request.
    return result.output | {name: getattr(result, name) for name in PUBLIC_FIELDS}
