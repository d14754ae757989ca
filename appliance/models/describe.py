"""A model version in words, the same in the CLI and the TUI: what it does (task), how it is
served (runtime), what it is (architecture, parameters, weight size) and the quantization modes
its register check found it serves in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def describe(row: Mapping[str, Any]) -> str:
    """A version in a few words: task, runtime, architecture, parameters and weight size."""
    info = row.get("info") or {}
    parts = [row.get("task") or "task unknown", f"{row.get('runtime') or 'no'} runtime"]
    if info.get("architecture"):
        parts.append(str(info["architecture"]))
    if info.get("parameters"):
        parts.append(f"{human_count(int(info['parameters']))} parameters")
    parts.append(human_bytes(int(info.get("weight_bytes") or row["size"])))
    return ", ".join(parts)


def quantization(row: Mapping[str, Any]) -> dict[str, list[str]]:
    """{device: the quantization modes the register check served the version in}; empty for a
    version registered without the check (a run's)."""
    check = (row.get("info") or {}).get("check") or {}
    return {str(device): list(modes) for device, modes in (check.get("quantization") or {}).items()}


def human_count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"
