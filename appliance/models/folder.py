"""What a registrable model folder is: a Hugging Face folder with `config.json` and safetensors
weights, and no pickles (a pickle can run arbitrary code when loaded)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from appliance.errors import InvalidInput

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
_MAX_HEADER = 100_000_000


def validate_model_folder(folder: Path) -> None:
    """Raise InvalidInput listing every reason `folder` cannot be registered."""
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
    weights = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            problems.append(f"{rel} is a symbolic link; copy the real file into the folder")
        elif path.suffix in PICKLE_SUFFIXES:
            problems.append(
                f"{rel} is a pickle file, which can run arbitrary code when loaded; only "
                "safetensors weights are accepted: re-save with "
                "save_pretrained(folder, safe_serialization=True) and remove it"
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


def _safetensors_problem(path: Path) -> str | None:
    # The format: an 8-byte little-endian header length, then that many bytes of JSON.
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
    return None if isinstance(header, dict) else "has a malformed safetensors header"
