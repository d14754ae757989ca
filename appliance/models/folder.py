"""What a registrable model folder is: a Hugging Face folder with `config.json` and safetensors
weights, and no pickles (a pickle can run arbitrary code when loaded). `training_args.bin`,
which the HF Trainer writes into every folder it saves, is a pickle too: it is left out of the
version with a note rather than refused."""

from __future__ import annotations

import json
import math
import struct
import zipfile
from pathlib import Path
from typing import Any

from appliance.errors import InvalidInput

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")
NUMPY_SUFFIXES = (".npy", ".npz")
SKIPPED = {"training_args.bin": "the HF Trainer's pickled arguments; not needed to serve"}
"""Files left out of a version (with the reason shown at register) rather than refused."""
_MAX_HEADER = 100_000_000
_SPARSE_MIN_BYTES = 1 << 20
"""Files this big must have at least half their bytes on disk (smaller ones may live inline)."""
_SAFETENSORS_DTYPE_BYTES = {
    "F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2,
    "U16": 2, "I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1,
}  # fmt: skip


def validate_model_folder(folder: Path) -> list[str]:
    """Raise InvalidInput listing every reason `folder` cannot be registered; else the notes
    on the files that are left out (see SKIPPED)."""
    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a folder; give a Hugging Face model folder")
    problems: list[str] = []
    config = folder / "config.json"
    if not config.is_file():
        problems.append("config.json is missing (save the model with save_pretrained)")
    else:
        try:
            if not isinstance(json.loads(config.read_text()), dict):
                problems.append("config.json does not hold a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            problems.append(f"config.json is not valid JSON ({exc})")
    weights, notes = [], []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if rel in SKIPPED:
            notes.append(f"{rel} is left out: {SKIPPED[rel]}")
        elif path.is_symlink():
            problems.append(f"{rel} is a symbolic link; copy the real file into the folder")
        elif path.suffix in PICKLE_SUFFIXES:
            problems.append(
                f"{rel} is a pickle file, which can run arbitrary code when loaded; only "
                "safetensors weights are accepted: re-save with "
                "save_pretrained(folder, safe_serialization=True) and remove it"
            )
        elif path.suffix in NUMPY_SUFFIXES and _holds_objects(path):
            problems.append(
                f"{rel} holds Python objects (a NumPy object array is pickled and can run code "
                "when loaded); save plain numeric arrays, or leave it out"
            )
        elif path.suffix == ".safetensors":
            weights.append(rel)
            if error := _safetensors_problem(path):
                problems.append(f"{rel} {error}")
    if not weights:
        problems.append("no .safetensors weights found")
    if problems:
        raise InvalidInput(
            f"{folder} cannot be registered:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    return notes


def architecture(folder: Path) -> dict[str, Any]:
    """{"architecture": the first of config.json's `architectures`} ("?" when it names none),
    or {} when config.json is unreadable."""
    try:
        config = json.loads((folder / "config.json").read_text())
        return {"architecture": str((config.get("architectures") or ["?"])[0])}
    except (OSError, ValueError, AttributeError):
        return {}


def weights_summary(folder: Path) -> dict[str, Any]:
    """Parameters, bytes and dtypes of the folder's safetensors weights, from their headers
    alone (no weights read)."""
    parameters, size, dtypes = 0, 0, set()
    for path in sorted(folder.rglob("*.safetensors")):
        for name, entry in _header(path).items():
            if name == "__metadata__" or not isinstance(entry, dict):
                continue
            count = math.prod(int(d) for d in entry.get("shape", []))
            parameters += count
            size += count * _SAFETENSORS_DTYPE_BYTES.get(str(entry.get("dtype")), 0)
            dtypes.add(str(entry.get("dtype")))
    return {"parameters": parameters, "weight_bytes": size, "dtypes": sorted(dtypes)}


def _holds_objects(path: Path) -> bool:
    """Whether a .npy, or any array of a .npz, has an object dtype (read from headers only)."""
    import numpy as np

    try:
        if path.suffix == ".npy":
            with path.open("rb") as handle:
                return bool(_npy_dtype(np, handle).hasobject)
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                with archive.open(member) as handle:
                    if _npy_dtype(np, handle).hasobject:
                        return True
    except (ValueError, OSError, zipfile.BadZipFile):
        return True  # unreadable: treated as unsafe rather than waved through
    return False


def _npy_dtype(np: Any, handle: Any) -> Any:
    major, _ = np.lib.format.read_magic(handle)
    if major == 1:
        return np.lib.format.read_array_header_1_0(handle)[2]
    return np.lib.format.read_array_header_2_0(handle)[2]


def _header(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    return header if isinstance(header, dict) else {}


def _safetensors_problem(path: Path) -> str | None:
    # The format: an 8-byte little-endian header length, that many bytes of JSON naming each
    # tensor's [begin, end) in the data after it, and the data: which ends the file exactly.
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            return "is too short to be a safetensors file"
        (length,) = struct.unpack("<Q", prefix)
        if length > _MAX_HEADER:
            return "has an implausible safetensors header; is it really safetensors?"
        try:
            header = json.loads(handle.read(length))
        except (ValueError, UnicodeDecodeError):
            return "has an unreadable safetensors header; is it really safetensors?"
    if not isinstance(header, dict):
        return "has a malformed safetensors header"
    return _extent_problem(path, 8 + length, header)


def _extent_problem(path: Path, data_start: int, header: dict[str, Any]) -> str | None:
    """Whether the tensors the header names fill the file exactly, and its bytes are on disk."""
    try:
        spans = [
            (int(entry["data_offsets"][0]), int(entry["data_offsets"][1]))
            for name, entry in header.items()
            if name != "__metadata__"
        ]
    except (TypeError, KeyError, IndexError, ValueError):
        return "has a safetensors header without data_offsets for every tensor"
    if any(begin < 0 or end < begin for begin, end in spans):
        return "has a safetensors header with a negative or reversed tensor span"
    stat = path.stat()
    expected = data_start + max((end for _, end in spans), default=0)
    if expected > stat.st_size:
        return (
            f"is truncated: its header says {expected:,} bytes but the file has "
            f"{stat.st_size:,}; copy or download it again"
        )
    if expected < stat.st_size:
        return (
            f"has {stat.st_size - expected:,} bytes after its last tensor (the header says "
            f"{expected:,}, the file has {stat.st_size:,}); save it again with safetensors"
        )
    on_disk = stat.st_blocks * 512
    if stat.st_size >= _SPARSE_MIN_BYTES and on_disk < stat.st_size // 2:
        return (
            f"is sparse: {stat.st_size:,} bytes long but only {on_disk:,} on disk (the rest "
            "reads as zeros, and would become real bytes in the version); register the "
            "trained weights, not a preallocated or placeholder file"
        )
    return None
