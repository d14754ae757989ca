"""The ONNX Runtime backend: the graphs in float32, or with ONNX Runtime's dynamic int8 (weights
int8 per channel, activations quantized per call: torch's `quantize_dynamic` in ONNX), run on
its CPU execution provider."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from appliance.runtimes.backends.graphs import DECODER, ENCODER, MANIFEST
from appliance.runtimes.backends.greedy import Run


def build(
    model: Any, folder: Path, quantization: str, image_size: Sequence[int], channels: int
) -> None:
    """Export `model` into `folder` in `quantization` ('none' or 'int8')."""
    from appliance.runtimes.backends.graphs import export

    export(model, folder, (int(image_size[0]), int(image_size[1])), channels)
    if quantization == "int8":
        quantize_dynamic(folder)


def quantize_dynamic(folder: Path) -> None:
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as quantize

    for name in (ENCODER, DECODER):
        source, target = folder / name, folder / f"int8-{name}"
        quantize(source, target, weight_type=QuantType.QInt8, per_channel=True)
        target.replace(source)


def quantize_static(folder: Path, feeds: dict[str, list[dict[str, Any]]]) -> None:
    """Static int8 (QDQ, weights per channel, activation ranges from `feeds`: each graph's inputs
    as the float32 graphs saw them on calibration rows, by graph file name)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static as quantize

    class Reader(CalibrationDataReader):
        def __init__(self, rows: list[dict[str, Any]]):
            self.rows = iter(rows)

        def get_next(self) -> dict[str, Any] | None:
            return next(self.rows, None)

    for name in (ENCODER, DECODER):
        source, target = folder / name, folder / f"int8-{name}"
        quantize(
            source,
            target,
            Reader(feeds[name]),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            weight_type=QuantType.QInt8,
            activation_type=QuantType.QUInt8,
        )
        target.replace(source)


def sessions(folder: Path, threads: int) -> tuple[Run, Run, dict[str, Any]]:
    """The encoder and decoder step as callables, and the manifest."""
    return (
        _session(folder / ENCODER, threads),
        _session(folder / DECODER, threads),
        manifest(folder),
    )


def manifest(folder: Path) -> dict[str, Any]:
    return dict(json.loads((folder / MANIFEST).read_text()))


def _session(path: Path, threads: int) -> Run:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # No spinning between calls: the process also runs torch models, the server and other
    # sessions, whose cores a spinning pool would take.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]

    def run(feeds: dict[str, Any]) -> list[Any]:
        return list(session.run(names, feeds))

    return run
