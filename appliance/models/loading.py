"""Loading a registered version with transformers: local folder, safetensors only, never remote
code. torch and transformers are imported here, on first use, not at start-up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from appliance.errors import InvalidInput


def load_pretrained(folder: Path) -> Any:
    """`from_pretrained` on a local model folder, using the class its config names."""
    import transformers

    config = json.loads((folder / "config.json").read_text())
    architectures = config.get("architectures") or []
    model_class = getattr(transformers, architectures[0], None) if architectures else None
    if model_class is None:
        model_class = transformers.AutoModel
    try:
        return model_class.from_pretrained(folder, use_safetensors=True, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{folder} could not be loaded by transformers: {exc}") from None
