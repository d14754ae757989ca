"""What a loaded model weighs: estimated from its folder's weights before it is loaded, measured
(the process's RSS growth over the load) once it has been, and the measured figure preferred.

The estimate reads only the safetensors headers (no weights) and counts each tensor's elements
at the precision the deploy will hold them in: `none` as stored; `fp16`/`bf16` two bytes per
floating element; `int8` one byte per element of each 2-D floating tensor (the weights of the
Linear and Embedding layers, which the quantizers convert, plus 8 bytes of scale per row) and
the rest as stored; `nf4` half a byte per element of those (plus a 4-byte scale per 64) and
the rest as stored. It counts weights only: the runtime's own buffers, the tokenizer and the
activations of a batch come on top, which is why a measured figure is preferred.

The measurement is the growth of the process's resident memory from just before a load to just
after its warm-up. It is taken only when the load replaced nothing (a swap retires the old model
inside the same interval) and imported no new code (the first model of a kind imports
transformers, hundreds of MB that are not the model's). It can read low when the allocator
reuses memory that an earlier unload freed, so a model's footprint is never taken below its
estimate.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.models.folder import _SAFETENSORS_DTYPE_BYTES, _header
from appliance.registry import Registry
from appliance.serving.options import DeployOptions

MB = 1024 * 1024
_FLOATING = {"F64", "F32", "F16", "BF16"}


@dataclass(frozen=True)
class Footprint:
    mb: float
    device: str
    """cpu or cuda: which budget it counts against."""
    source: str
    """measured (RSS growth of a load) or estimated (from the weights)."""


def estimate_bytes(folder: Path, quantization: str) -> int:
    """The bytes `folder`'s safetensors weights take when loaded with `quantization`."""
    total = 0.0
    for path in sorted(folder.rglob("*.safetensors")):
        for name, entry in _header(path).items():
            if name == "__metadata__" or not isinstance(entry, dict):
                continue
            shape = [int(d) for d in entry.get("shape", [])]
            total += _tensor_bytes(str(entry.get("dtype")), shape, quantization)
    return int(total)


def _tensor_bytes(dtype: str, shape: list[int], quantization: str) -> float:
    count = math.prod(shape)
    stored = count * _SAFETENSORS_DTYPE_BYTES.get(dtype, 4)
    if dtype not in _FLOATING or quantization == "none":
        return float(stored)
    if quantization in ("fp16", "bf16"):
        return count * 2.0
    if len(shape) != 2:  # biases, norms, convolutions: the quantizers leave them as they are
        return float(stored)
    if quantization == "int8":
        return count + shape[0] * 8.0
    return count / 2 + count / 64 * 4  # nf4: 4 bits an element, a 4-byte absmax per block of 64


class LoadMeter:
    """The RSS growth of one load: start before it, `stop()` after its warm-up; None when the
    reading would not be the model's (see the module's docstring)."""

    def __init__(self, replaces: bool):
        self._replaces = replaces
        self._modules = len(sys.modules)
        self._before = _rss()

    def stop(self) -> float | None:
        if self._replaces or len(sys.modules) != self._modules:
            return None
        return max(0.0, (_rss() - self._before) / MB)


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def recorded_mb(registry: Registry, version_id: str, options: DeployOptions) -> float | None:
    """The RSS growth recorded with the latest deploy of this version with these options
    (`resident_mb` in its event), if any."""
    rows = registry.query(
        "SELECT detail FROM events WHERE model_version_id = ?"
        " AND kind IN ('deployed', 'rolled_back')"
        " AND json_extract(detail, '$.resident_mb') IS NOT NULL ORDER BY id DESC LIMIT 20",
        (version_id,),
    )
    for row in rows:
        detail: dict[str, Any] = json.loads(row["detail"])
        if all(detail.get(k) == getattr(options, k) for k in ("quantization", "device", "backend")):
            return float(detail["resident_mb"])
    return None
