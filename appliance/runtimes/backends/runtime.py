"""A Hugging Face captioner served by ONNX Runtime or OpenVINO: the same contract, inputs and
answers as the torch runtime (`HuggingFaceRuntime`), the forward passes run by the backend on
the graphs exported once per version (export.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appliance.runtimes.backends.export import cached
from appliance.runtimes.huggingface.detect import Detected
from appliance.serving.options import DeployOptions
from appliance.serving.runtime import PredictorRuntime
from appliance.tasks import Task


class BackendRuntime(PredictorRuntime):
    def __init__(
        self,
        model_dir: Path,
        detected: Detected,
        options: DeployOptions,
        task: Task,
        backend: str,
        export_dir: Path,
    ):
        super().__init__(model_dir, options, task)
        self.detected, self.backend, self.export_dir = detected, backend, export_dir

    def load_predictor(self, device: str) -> Any:
        return load_predictor(
            self.model_dir, self.detected, self.backend, self.options.quantization, self.export_dir
        )


def load_predictor(
    folder: Path, detected: Detected, backend: str, quantization: str, export_dir: Path
) -> Any:
    """The folder's captioner on `backend` in `quantization`, exported into `export_dir` first
    unless an export is already there."""
    import torch

    from appliance.runtimes.backends import onnx, openvino
    from appliance.runtimes.backends.greedy import GraphCaptions
    from appliance.runtimes.huggingface.runtime import _auto, load_model

    def build(work: Path) -> None:
        model = load_model(folder, detected)
        config = model.config.encoder
        size = config.image_size
        size = tuple(size) if isinstance(size, list | tuple) else (size, size)
        module = onnx if backend == "onnxruntime" else openvino
        module.build(model, work, quantization, size, config.num_channels)

    cached(export_dir, build)
    threads = torch.get_num_threads()
    if backend == "onnxruntime":
        encoder, step, manifest = onnx.sessions(export_dir, threads)
    else:
        encoder, step, manifest = openvino.sessions(export_dir, threads, quantization)
    return GraphCaptions(
        encoder,
        step,
        manifest,
        _auto("AutoImageProcessor", folder),
        _auto("AutoTokenizer", folder),
        generation_config(folder),
    )


def generation_config(folder: Path) -> Any:
    """The folder's generation config, else the one transformers derives from its config."""
    from transformers import AutoConfig, GenerationConfig

    if (folder / "generation_config.json").is_file():
        return GenerationConfig.from_pretrained(folder)
    config = AutoConfig.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    return GenerationConfig.from_model_config(
        config.decoder if hasattr(config, "decoder") else config
    )
