"""A Hugging Face captioner served by ONNX Runtime or OpenVINO: the same contract, inputs and
answers as the torch runtime (`HuggingFaceRuntime`), the forward passes run by the backend on
the graphs exported once per version (export.py)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from appliance.errors import InvalidInput
from appliance.runtimes.backends.export import cached
from appliance.runtimes.huggingface.detect import Detected
from appliance.serving.options import DeployOptions
from appliance.serving.runtime import PredictorRuntime
from appliance.tasks import Task

log = logging.getLogger("appliance.serving")


class BackendRuntime(PredictorRuntime):
    """`chosen`: picked by `auto` rather than asked for; an export that fails then serves the
    model with torch (logged) instead of failing the deploy."""

    def __init__(
        self,
        model_dir: Path,
        detected: Detected,
        options: DeployOptions,
        task: Task,
        backend: str,
        export_dir: Path,
        chosen: bool = False,
    ):
        super().__init__(model_dir, options, task)
        self.detected, self.backend, self.export_dir = detected, backend, export_dir
        self.chosen = chosen

    def load_predictor(self, device: str) -> Any:
        mode = self.options.quantization
        try:
            predictor = load_predictor(
                self.model_dir, self.detected, self.backend, mode, self.export_dir
            )
        except Exception:
            if not self.chosen:
                raise
            log.exception("%s could not export %s; serving it with torch", self.backend,
                          self.model_dir)  # fmt: skip
            from appliance.runtimes.huggingface.runtime import load_predictor as torch_predictor

            self.serving_backend = "torch"
            return torch_predictor(self.model_dir, self.detected, device, mode)
        self.serving_backend = self.backend
        return predictor


def load_predictor(
    folder: Path, detected: Detected, backend: str, quantization: str, export_dir: Path
) -> Any:
    """The folder's captioner on `backend` in `quantization`, exported into `export_dir` first
    unless an export is already there."""
    import torch

    from appliance.runtimes.backends import onnx, openvino
    from appliance.runtimes.backends.graphs import unsupported_reason
    from appliance.runtimes.backends.greedy import GraphCaptions
    from appliance.runtimes.huggingface.runtime import _auto, load_model

    def build(work: Path) -> None:
        model = load_model(folder, detected)
        reason = unsupported_reason(model.config)
        if reason is not None:
            raise InvalidInput(f"{folder}: {reason}")
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
