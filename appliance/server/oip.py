"""The Open Inference Protocol v2 subset (KServe/Triton), so their clients work unchanged: server
and model health, model metadata, and `infer` with a BYTES input of encoded images (base64 in
JSON, or raw with Triton's binary tensor extension) answering BYTES descriptions and FP32
confidences."""

from __future__ import annotations

import json
import struct
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath

from appliance import __version__
from appliance.errors import InvalidInput, NotFound
from appliance.server.inputs import MAX_BATCH, decode_base64
from appliance.serving.images import decode_image, image_features
from appliance.serving.runtime import PredictInput
from appliance.serving.service import Serving

AnyRequest = Request[Any, Any, Any]

BINARY_HEADER = "inference-header-content-length"
INPUTS = [
    {"name": "image", "datatype": "BYTES", "shape": [-1]},
    {"name": "keywords", "datatype": "BYTES", "shape": [-1]},
]
OUTPUTS = [
    {"name": "description", "datatype": "BYTES", "shape": [-1]},
    {"name": "confidence", "datatype": "FP32", "shape": [-1]},
]


class OipController(Controller):
    path = "/v2"
    tags = ["open inference protocol v2"]

    @get("/")
    async def server_metadata(self) -> dict[str, Any]:
        return {"name": "appliance", "version": __version__, "extensions": ["binary_tensor_data"]}

    @get("/health/live")
    async def live(self) -> dict[str, bool]:
        """The process is up and answering."""
        return {"live": True}

    @get("/health/ready")
    async def ready(self, request: AnyRequest) -> Response[dict[str, bool]]:
        """Every recorded deployment is loaded (503 while they are still loading)."""
        serving: Serving = request.app.state.serving
        ready = not serving.restoring
        return Response({"ready": ready}, status_code=200 if ready else 503)

    @get(["/models/{name:str}", "/models/{name:str}/versions/{version:str}"])
    async def model_metadata(
        self,
        request: AnyRequest,
        name: FromPath[str],
        version: FromPath[str | None] = None,
    ) -> dict[str, Any]:
        live = _live(request, name, version)
        return {
            "name": name,
            "versions": [str(live.version["version"])],
            "platform": f"appliance/{live.version['name']}",
            "inputs": INPUTS,
            "outputs": OUTPUTS,
        }

    @get(["/models/{name:str}/ready", "/models/{name:str}/versions/{version:str}/ready"])
    async def model_ready(
        self,
        request: AnyRequest,
        name: FromPath[str],
        version: FromPath[str | None] = None,
    ) -> dict[str, Any]:
        live = _live(request, name, version)
        return {"name": name, "ready": live.runtime.ready}

    @post(
        ["/models/{name:str}/infer", "/models/{name:str}/versions/{version:str}/infer"],
        opt={"predict": True},
        status_code=200,
    )
    async def infer(
        self,
        request: AnyRequest,
        name: FromPath[str],
        version: FromPath[str | None] = None,
    ) -> dict[str, Any]:
        live = _live(request, name, version)
        header, tensors = _parse_infer(await request.body(), request.headers.get(BINARY_HEADER))
        images = tensors.get("image")
        if not images:
            raise InvalidInput("infer needs a BYTES input named 'image' holding encoded images")
        if len(images) > MAX_BATCH:
            raise InvalidInput(f"at most {MAX_BATCH} images per request, got {len(images)}")
        keywords = tensors.get("keywords") or []
        max_pixels = request.app.state.settings.max_image_pixels

        def decode() -> list[PredictInput]:
            inputs = []
            for i, data in enumerate(images):
                image = decode_image(data, max_pixels)
                words = _text(keywords[i]) if i < len(keywords) and keywords[i] else None
                inputs.append(PredictInput(image, words, image_features(image)))
            return inputs

        serving: Serving = request.app.state.serving
        inputs = await serving.off_loop(decode)
        results = await serving.predict(name, inputs)
        answer: dict[str, Any] = {
            "model_name": name,
            "model_version": str(live.version["version"]),
            "outputs": [
                {"name": "description", "datatype": "BYTES", "shape": [len(results)],
                 "data": [r.description for r in results]},
                {"name": "confidence", "datatype": "FP32", "shape": [len(results)],
                 "data": [r.confidence for r in results]},
            ],
        }  # fmt: skip
        if "id" in header:
            answer["id"] = header["id"]
        return answer


def _live(request: AnyRequest, name: str, version: str | None) -> Any:
    serving: Serving = request.app.state.serving
    live = serving.pool.get(serving.find_endpoint(name), name)
    if version is not None and version != str(live.version["version"]):
        raise NotFound(
            f"model '{name}' serves version {live.version['version']}, not version {version}"
        )
    return live


def _parse_infer(
    body: bytes, binary_length: str | None
) -> tuple[dict[str, Any], dict[str, list[bytes]]]:
    """The JSON header and each input's elements as bytes."""
    try:
        split = int(binary_length) if binary_length is not None else len(body)
        header = json.loads(body[:split])
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # deep nesting recurses
        raise InvalidInput(f"the infer request is not valid JSON ({exc})") from None
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list):
        raise InvalidInput("an infer request is a JSON object with an 'inputs' list")
    binary = memoryview(body)[split:]
    tensors: dict[str, list[bytes]] = {}
    for tensor in header["inputs"]:
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise InvalidInput("each input needs a 'name'")
        name = tensor["name"]
        if tensor.get("datatype") != "BYTES":
            raise InvalidInput(f"input '{name}' must have datatype BYTES")
        parameters = tensor.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise InvalidInput(f"input '{name}': 'parameters' must be an object")
        size = parameters.get("binary_data_size")
        if size is not None and (type(size) is not int or size < 0):
            raise InvalidInput(f"input '{name}': binary_data_size must be a byte count")
        if size is not None:
            tensors[name], binary = _unpack_bytes(binary[:size], name), binary[size:]
        else:
            data = tensor.get("data")
            if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
                raise InvalidInput(f"input '{name}' needs 'data': a list of strings")
            tensors[name] = [
                decode_base64(x, f"input '{name}'") if name == "image" else x.encode() for x in data
            ]
    return header, tensors


def _unpack_bytes(raw: memoryview, name: str) -> list[bytes]:
    """Triton's BYTES encoding: each element is a 4-byte little-endian length, then the bytes."""
    items, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise InvalidInput(f"input '{name}': truncated binary BYTES element")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise InvalidInput(f"input '{name}': truncated binary BYTES element")
        items.append(bytes(raw[offset : offset + length]))
        offset += length
    return items


def _text(data: bytes) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise InvalidInput("input 'keywords' must be UTF-8 text") from None
