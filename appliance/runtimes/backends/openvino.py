"""The OpenVINO backend: the same ONNX graphs (int8: ONNX Runtime's dynamic int8 ones, which
OpenVINO reads), converted once to OpenVINO's own format in the export, compiled for the CPU
with the precision asked for: float32 for 'none' and 'int8' (OpenVINO would otherwise pick
bf16 on a CPU with AMX or AVX-512 BF16), bf16 for 'bf16'."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from appliance.runtimes.backends import onnx
from appliance.runtimes.backends.graphs import DECODER, ENCODER
from appliance.runtimes.backends.greedy import Run

PRECISION = {"none": "f32", "int8": "f32", "bf16": "bf16"}


def build(
    model: Any, folder: Path, quantization: str, image_size: Sequence[int], channels: int
) -> None:
    import openvino as ov

    onnx.build(model, folder, "int8" if quantization == "int8" else "none", image_size, channels)
    for name in (ENCODER, DECODER):
        source = folder / name
        ov.save_model(ov.Core().read_model(str(source)), str(_ir(source)), compress_to_fp16=False)
        source.unlink()


def sessions(folder: Path, threads: int, quantization: str) -> tuple[Run, Run, dict[str, Any]]:
    config = {
        "INFERENCE_PRECISION_HINT": PRECISION[quantization],
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY",
        # Unpinned: pinning would also bind the process's other threads (torch's among them).
        "ENABLE_CPU_PINNING": False,
    }
    encoder = _compiled(_ir(folder / ENCODER), config)
    step = _compiled(_ir(folder / DECODER), config)
    return encoder, step, onnx.manifest(folder)


def _ir(onnx_path: Path) -> Path:
    return onnx_path.with_suffix(".xml")


def _compiled(path: Path, config: dict[str, Any]) -> Run:
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", config)
    request = compiled.create_infer_request()
    outputs = list(compiled.outputs)

    def run(feeds: dict[str, Any]) -> list[Any]:
        result = request.infer(feeds)
        return [result[o] for o in outputs]

    return run
