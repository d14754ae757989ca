"""A deployment's runtime options and their allowed values (kept free of heavy imports: the
CLI builds its choices from them at start-up)."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.errors import InvalidInput

QUANTIZATIONS = ("none", "fp16", "bf16", "int8", "nf4")
DEVICES = ("auto", "cpu", "cuda")
BACKENDS = ("auto", "torch", "onnxruntime", "openvino")
"""What runs the model's forward passes; auto: the one measured fastest for the device."""
INSTANCE_KINDS = ("thread", "process")
MAX_INSTANCES = 16


@dataclass(frozen=True)
class DeployOptions:
    quantization: str = "none"
    device: str = "auto"
    max_batch_size: int = 8
    max_batch_wait_ms: int = 5
    backend: str = "auto"
    instances: int = 1
    """Loaded copies of the model, each with its own batcher (Triton's instance groups)."""
    instance_kind: str = "thread"
    """thread: in this process; process: a spawned worker each, fed through shared memory."""
    keep_alive_s: int = 0
    """Idle seconds after which the model is unloaded, and loaded again on its next request;
    0: kept loaded."""

    def __post_init__(self) -> None:
        if self.quantization not in QUANTIZATIONS:
            raise InvalidInput(
                f"quantization '{self.quantization}' is not one of {', '.join(QUANTIZATIONS)}"
            )
        if self.device not in DEVICES:
            raise InvalidInput(f"device '{self.device}' is not one of {', '.join(DEVICES)}")
        if not 1 <= self.max_batch_size <= 256:
            raise InvalidInput("max_batch_size must be between 1 and 256")
        if not 0 <= self.max_batch_wait_ms <= 1000:
            raise InvalidInput("max_batch_wait_ms must be between 0 and 1000")
        if self.backend not in BACKENDS:
            raise InvalidInput(f"backend '{self.backend}' is not one of {', '.join(BACKENDS)}")
        if not 1 <= self.instances <= MAX_INSTANCES:
            raise InvalidInput(f"instances must be between 1 and {MAX_INSTANCES}")
        if self.instance_kind not in INSTANCE_KINDS:
            raise InvalidInput(
                f"instance_kind '{self.instance_kind}' is not one of {', '.join(INSTANCE_KINDS)}"
            )
        if not 0 <= self.keep_alive_s <= 7 * 24 * 3600:
            raise InvalidInput("keep_alive_s must be between 0 (kept loaded) and 604800 (a week)")
