"""The demo's cast and settings: names of what it creates, and its options."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.datasets.imagefolder import METADATA

WORKSPACE = "classified-ads"
DATASET = "product-photos"
RECIPE = "captioner"
ENDPOINT = "captions"
SUMMARY_METRICS = ("exact_match", "exact_match_normal", "exact_match_low", "bleu", "train_seconds")


@dataclass(frozen=True)
class DemoOptions:
    count: int = 2000
    new_category_count: int = 200
    seed: int = 0
    low_light_fraction: float = 0.1
    quantization: str = "int8"
    train_params: dict[str, str] = field(default_factory=dict)
    traffic_normal: int = 60
    traffic_low_light: int = 90
    car_traffic: int = 60
    watch_seconds: float = 15.0


def rows_of(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / METADATA).read_text().splitlines() if line]
