"""A model version in words, the same in the CLI and the TUI: what it does (task), how it is
served (runtime), what it is (architecture, parameters, weight size), the quantization modes
its register check found it serves in, and its calibration (appliance/trust/)."""

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


BAR = 20


def calibration_lines(trust: Mapping[str, Any]) -> list[str]:
    """A version's calibration in a few lines: what it rests on, its figures held out and on
    unseen shifts, the uncertain threshold, and the reliability table as a small plot (each
    confidence bin's accuracy as a bar)."""
    m = trust.get("metrics", {})
    chosen = str(trust.get("kept", "plain"))
    kept = ""
    if chosen.startswith("distance@"):
        kept = f" and the distance from the training data (shifted rows weighted {chosen[9:]})"
    lines = [
        f"calibration: {trust['signal']} by {trust['method']}{kept}, on "
        f"{trust['rows']['held_out']} held-out and {trust['rows']['shifted']} shifted rows",
        f"  held out: ECE {m.get('ece', 0):.3f} (raw {m.get('ece_raw', 0):.3f}), error AUROC "
        f"{m.get('error_auroc', 0):.2f} (raw {m.get('error_auroc_raw', 0):.2f})",
    ]
    if "ece_shifted" in m:
        lines.append(
            f"  on shifts it was not fitted on: ECE {m['ece_shifted']:.3f}, error AUROC "
            f"{m['error_auroc_shifted']:.2f} (accuracy there {m.get('accuracy_shifted', 0):.2f})"
        )
    u = trust.get("uncertain") or {}
    if u.get("recall") is not None:
        lines.append(
            f"  uncertain below {u['threshold']:.3f}: warns {u['warned_share']:.0%} of the "
            f"held-out answers, {u['recall']:.0%} of the wrong ones (precision "
            f"{u['precision']:.0%})"
        )
    far = (trust.get("distance") or {}).get("unfamiliar")
    if far:
        lines.append(
            f"  unfamiliar beyond distance {far:.2f} (99% of the held-out rows are nearer): "
            "kept for review"
        )
    lines.append("  reliability (held out): confidence bin, accuracy, answers")
    for row in trust.get("reliability", []):
        filled = round(row["accuracy"] * BAR)
        lines.append(
            f"    {row['low']:.1f}-{row['high']:.1f}  {'█' * filled}{'·' * (BAR - filled)} "
            f"{row['accuracy']:.2f}  n={row['count']}"
        )
    return lines
