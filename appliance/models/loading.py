"""Loading a registered version with transformers: local folder, safetensors only, never remote
code. torch and transformers are imported here, on first use, not at start-up."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from appliance.errors import InvalidInput


def quiet_offline_transformers() -> None:
    """The appliance never reaches a hub, and its logs are not the place for download bars:
    force Hugging Face libraries offline and keep their chatter to errors."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def load_pretrained(folder: Path) -> Any:
    """`from_pretrained` on a local model folder, using the class its config names."""
    quiet_offline_transformers()
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
