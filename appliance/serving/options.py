"""A deployment's runtime options and their allowed values (kept free of heavy imports: the
CLI builds its choices from them at start-up)."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.errors import InvalidInput

QUANTIZATIONS = ("none", "fp16", "bf16", "int8", "nf4")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class DeployOptions:
    quantization: str = "none"
    device: str = "auto"
    max_batch_size: int = 8
    max_batch_wait_ms: int = 5

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
