"""The Open Inference Protocol v2 subset (KServe/Triton), so their clients work unchanged: server
and model health, model metadata, and `infer`. The inputs and outputs are the endpoint's task's
(image-to-text: a BYTES input of encoded images, base64 in JSON or raw with Triton's binary tensor
extension, answering BYTES descriptions and FP32 confidences)."""

from __future__ import annotations

import json
import struct
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from msgspec import UNSET, UnsetType

from appliance import __version__
from appliance.access.roles import Role
from appliance.access.rules import BY_TASK, allow, public
from appliance.errors import InvalidInput, NotFound
from appliance.server.inputs import MAX_BATCH, decode_all
from appliance.serving.pool import LiveModel
from appliance.serving.service import Serving
from appliance.tasks import Field, Prediction, Task
from appliance.tasks.contract import decode_base64

AnyRequest = Request[Any, Any, Any]

BINARY_HEADER = "inference-header-content-length"


class ServerMetadata(msgspec.Struct):
    name: str
    version: str
    extensions: list[str]


class Liveness(msgspec.Struct):
    live: bool


class Readiness(msgspec.Struct):
    ready: bool


class TensorMetadata(msgspec.Struct):
    name: str
    datatype: str
    """BYTES, FP32 or INT64."""
    shape: list[int]
    """-1: any length (the batch)."""


class ModelMetadata(msgspec.Struct):
    name: str
    versions: list[str]
    platform: str
    """`transformers` for a folder served by the Hugging Face runtime, else `appliance/RECIPE`."""
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, str | int]
    """What the model is (OIP's free-form parameters): task, runtime, architecture,
    parameter_count, weight_bytes, and how it is deployed: quantization, device."""


class ModelReadiness(msgspec.Struct):
    name: str
    ready: bool


class OutputTensor(msgspec.Struct):
    name: str
    datatype: str
    shape: list[int]
    data: list[str | float]
    """One element per input: text for BYTES, a number for FP32 and INT64."""


class InferAnswer(msgspec.Struct, kw_only=True):
    model_name: str
    model_version: str
    id: str | UnsetType = UNSET
    """The request's `id`, when it had one."""
    outputs: list[OutputTensor]


class OipController(Controller):
    path = "/v2"
    tags = ["open inference protocol v2"]

    @get("/", opt=allow(Role.viewer))
    async def server_metadata(self) -> ServerMetadata:
        return ServerMetadata("appliance", __version__, ["binary_tensor_data"])

    @get("/health/live", opt=public())
    async def live(self) -> Liveness:
        """The process is up and answering."""
        return Liveness(True)

    @get("/health/ready", opt=public())
    async def ready(self, serving: NamedDependency[Serving]) -> Response[Readiness]:
        """Every recorded deployment is loaded (503 while they are still loading)."""
        ready = not serving.restoring
        return Response(Readiness(ready), status_code=200 if ready else 503)

    @get(
        ["/models/{name:str}", "/models/{name:str}/versions/{version:str}"],
        opt=allow(Role.viewer, scope=("endpoint", "name")),
    )
    async def model_metadata(
        self,
        serving: NamedDependency[Serving],
        name: FromPath[str],
        version: FromPath[str | None] = None,
    ) -> ModelMetadata:
        live = _live(serving, name, version)
        task, record = live.runtime.task, live.version
        info = record.get("info") or {}
        runtime = record.get("runtime") or "recipe"
        described = {
            "task": task.name,
            "runtime": runtime,
            "architecture": info.get("architecture"),
            "parameter_count": info.get("parameters"),
            "weight_bytes": info.get("weight_bytes"),
            "quantization": live.options.quantization,
            "device": live.runtime.device,
        }
        recipe = record.get("recipe") or record["name"]
        platform = "transformers" if runtime == "huggingface" else f"appliance/{recipe}"
        return ModelMetadata(
            name=name,
            versions=[str(record["version"])],
            platform=platform,
            inputs=[_metadata(f) for f in task.inputs],
            outputs=[_metadata(f) for f in task.outputs],
            parameters={k: v for k, v in described.items() if v is not None},
        )

    @get(
        ["/models/{name:str}/ready", "/models/{name:str}/versions/{version:str}/ready"],
        opt=allow(Role.viewer, scope=("endpoint", "name")),
    )
    async def model_ready(
        self,
        serving: NamedDependency[Serving],
        name: FromPath[str],
        version: FromPath[str | None] = None,
    ) -> ModelReadiness:
        live = _live(serving, name, version)
        return ModelReadiness(name, live.runtime.ready)

    @post(
        ["/models/{name:str}/infer", "/models/{name:str}/versions/{version:str}/infer"],
        opt=allow(
            Role.predictor,
            content_types=BY_TASK,
            scope=("endpoint", "name"),
            predict=True,
            audit=False,
        ),
        status_code=200,
    )
    async def infer(
        self,
        request: AnyRequest,
        serving: NamedDependency[Serving],
        name: FromPath[str],
        version: FromPath[str | None] = None,
    ) -> InferAnswer:
        live = _live(serving, name, version)
        task = live.runtime.task
        header, tensors = _parse_infer(
            await request.body(), request.headers.get(BINARY_HEADER), task
        )
        raw = task.from_tensors(tensors)
        if len(raw) > MAX_BATCH:
            raise InvalidInput(f"at most {MAX_BATCH} {task.noun}s per request, got {len(raw)}")
        inputs = await serving.off_loop(decode_all, task, raw, serving.services.settings)
        results = await serving.predict(name, inputs)
        outputs = task.tensors([Prediction(r.output, r.confidence) for r in results])
        return InferAnswer(
            model_name=name,
            model_version=str(live.version["version"]),
            id=header.get("id", UNSET),
            outputs=[OutputTensor(**t) for t in outputs],
        )


def _live(serving: NamedDependency[Serving], name: str, version: str | None) -> LiveModel:
    live = serving.pool.get(serving.find_endpoint(name), name)
    if version is not None and version != str(live.version["version"]):
        raise NotFound(
            f"model '{name}' serves version {live.version['version']}, not version {version}"
        )
    return live


def _metadata(field: Field) -> TensorMetadata:
    return TensorMetadata(field.name, field.datatype, [-1])


def _parse_infer(
    body: bytes, binary_length: str | None, task: Task
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
    binary_fields = {f.name for f in task.inputs if f.binary}
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
                decode_base64(x, f"input '{name}'") if name in binary_fields else x.encode()
                for x in data
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
