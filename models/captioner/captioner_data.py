"""Training images held in memory once, with on-the-fly low-light and mirror augmentation."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from transformers import ViTImageProcessor

from appliance.datasets.synthetic import darken

CHUNK = 256  # images per processor call: bounded memory, few Python round trips


def open_rgb(dataset_dir: Path, row: dict[str, Any]) -> Image.Image:
    with Image.open(Path(dataset_dir) / row["file_name"]) as im:
        return im.convert("RGB")


def pixels(processor: ViTImageProcessor, images: list[Image.Image]) -> torch.Tensor:
    parts = [
        processor(images=images[i : i + CHUNK], return_tensors="pt").pixel_values
        for i in range(0, len(images), CHUNK)
    ]
    return torch.cat(parts) if parts else torch.empty(0)


class TrainImages:
    """The training rows' photos, decoded and preprocessed once (PIL per step would dominate).

    `batch` darkens a `low_light_fraction` of the normal-light photos with the same transform the
    data generator uses (a real dark photo stays as it is) and mirrors half of them: no caption
    word depends on left/right.
    """

    def __init__(
        self, dataset_dir: Path, rows: list[dict[str, Any]], processor: ViTImageProcessor
    ) -> None:
        self.processor = processor
        self.images = [open_rgb(dataset_dir, row) for row in rows]
        self.darkenable = [row.get("lighting", "normal") != "low" for row in rows]
        self.clean = pixels(processor, self.images)

    def __len__(self) -> int:
        return len(self.images)

    def batch(
        self, indices: list[int], rng: random.Random, low_light_fraction: float, mirror: bool
    ) -> torch.Tensor:
        out = self.clean[indices].clone()
        dark = [
            j
            for j, i in enumerate(indices)
            if self.darkenable[i] and rng.random() < low_light_fraction
        ]
        if dark:
            darkened = [darken(self.images[indices[j]], rng) for j in dark]
            out[dark] = pixels(self.processor, darkened)
        if mirror:
            flip = [j for j in range(len(indices)) if rng.random() < 0.5]
            out[flip] = out[flip].flip(-1)
        return out
