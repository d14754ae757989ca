"""Decoded inputs through shared memory: a process instance's batch is copied once into its
arena, a `multiprocessing.shared_memory` block it owns, and only a small descriptor (offsets,
shapes, the few plain values) goes through the pipe. Pixels are never pickled.

An arena serves one batch at a time (its instance sends the next batch only after the answer),
grows by replacement when a batch needs more room, and is unlinked when its instance closes.
The worker attaches to it once per block and copies each array out before predicting, so the
next batch can overwrite the arena while last batch's tensors live on."""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Any

import numpy as np

from appliance.tasks import PredictInput

PREFIX = "appliance-"
"""Every block's name starts so (`/dev/shm/appliance-PID-N`): what a leak check looks for."""
_names = itertools.count()
_IMAGE_MODES = ("RGB", "RGBA", "L")
_ALIGN = 64


@dataclass(frozen=True)
class Slot:
    """One value of an input, placed in the arena: `kind` says how to rebuild it."""

    kind: str  # "image" (PIL: L, RGB or RGBA), "tensor" (torch) or "ndarray"
    offset: int
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class Batch:
    """What the pipe carries for one batch: the arena's name and each input's values, arrays as
    Slots and anything else (text, keywords, None) as it is."""

    block: str
    values: list[dict[str, Any]]
    features: list[dict[str, float]]


class Arena:
    """The parent's side: the block a process instance writes its batches into."""

    def __init__(self, size: int = 1 << 20):
        self._block = _create(size)

    @property
    def name(self) -> str:
        return self._block.name

    def pack(self, inputs: Sequence[PredictInput]) -> Batch:
        arrays: list[tuple[np.ndarray, int]] = []
        values: list[dict[str, Any]] = []
        end = 0
        for item in inputs:
            placed: dict[str, Any] = {}
            for key, value in item.values.items():
                found = _as_array(value)
                if found is None:
                    placed[key] = value
                    continue
                array, kind = found
                offset = -(-end // _ALIGN) * _ALIGN
                end = offset + array.nbytes
                arrays.append((array, offset))
                placed[key] = Slot(kind, offset, tuple(array.shape), array.dtype.str)
            values.append(placed)
        if end > self._block.size:
            self._grow(end)
        buffer = self._block.buf
        assert buffer is not None
        for array, offset in arrays:
            target = np.ndarray(array.shape, array.dtype, buffer=buffer, offset=offset)
            target[...] = array
            del target  # no view may outlive the block (close refuses while one does)
        del buffer
        return Batch(self._block.name, values, [dict(i.features) for i in inputs])

    def _grow(self, needed: int) -> None:
        old = self._block
        self._block = _create(max(needed, old.size * 2))
        _discard(old)

    def close(self) -> None:
        _discard(self._block)


class ArenaReader:
    """The worker's side: attached to the instance's current block, rebuilding inputs from it."""

    def __init__(self) -> None:
        self._block: shared_memory.SharedMemory | None = None

    def read(self, batch: Batch) -> list[PredictInput]:
        if self._block is None or self._block.name != batch.block:
            self.close()
            self._block = shared_memory.SharedMemory(name=batch.block)
        buffer = self._block.buf
        assert buffer is not None  # an attached block has its buffer until closed
        inputs = []
        for placed, features in zip(batch.values, batch.features, strict=True):
            values = {
                key: _rebuild(value, buffer) if isinstance(value, Slot) else value
                for key, value in placed.items()
            }
            inputs.append(PredictInput(values, features))
        del buffer
        return inputs

    def close(self) -> None:
        if self._block is not None:
            self._block.close()  # the parent unlinks; the worker only lets go of its mapping
            self._block = None


def _create(size: int) -> shared_memory.SharedMemory:
    name = f"{PREFIX}{os.getpid()}-{next(_names)}"
    return shared_memory.SharedMemory(name=name, create=True, size=size)


def _discard(block: shared_memory.SharedMemory) -> None:
    block.close()
    try:
        block.unlink()
    except FileNotFoundError:
        pass


def _as_array(value: Any) -> tuple[np.ndarray, str] | None:
    if isinstance(value, np.ndarray) and value.dtype != object:
        return np.ascontiguousarray(value), "ndarray"
    module = type(value).__module__
    if module.startswith("PIL.") and getattr(value, "mode", None) in _IMAGE_MODES:
        return np.asarray(value), "image"
    is_tensor = module.startswith("torch") and type(value).__name__ == "Tensor"
    if is_tensor and value.device.type == "cpu":
        try:
            return value.detach().contiguous().numpy(), "tensor"
        except TypeError:  # a dtype numpy lacks (bfloat16): pickled instead
            return None
    return None


def _rebuild(slot: Slot, buffer: memoryview) -> Any:
    view = np.ndarray(slot.shape, np.dtype(slot.dtype), buffer=buffer, offset=slot.offset)
    array = view.copy()  # the arena is overwritten by the next batch
    del view
    if slot.kind == "image":
        from PIL import Image

        return Image.fromarray(array)  # (h, w) is L, (h, w, 3) RGB, (h, w, 4) RGBA
    if slot.kind == "tensor":
        import torch

        return torch.from_numpy(array)
    return array
