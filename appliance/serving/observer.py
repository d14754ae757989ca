"""What serving tells whoever watches it (monitoring, in the server): each prediction as it is
answered or fails, as a CaptureRecord. Declared on serving's side so that serving never imports
monitoring; monitoring implements the Observer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class CaptureRecord:
    """One prediction as serving saw it. `image` is set only when a thumbnail is to be kept."""

    id: str
    workspace: str
    endpoint: str
    model_version_id: str | None
    created_at: str
    latency_ms: float
    model: str = ""
    version: int = 0
    queue_ms: float | None = None
    inference_ms: float | None = None
    batch_size: int | None = None
    features: dict[str, float] = field(default_factory=dict)
    words: str = ""
    """The input's watched words (the task's `words`): monitoring measures them against the
    version's training vocabulary off the request path, and never stores them."""
    keywords: str | None = None
    description: str | None = None
    """The answer's one-line summary (a description, a label), for listings."""
    output: dict[str, Any] | None = None
    """The task's answer fields, as the predict answer gave them."""
    confidence: float | None = None
    """Calibrated, where the version has a calibration (appliance/trust/)."""
    uncertain: bool | None = None
    """Below the version's uncertain threshold (None: the version has no calibration)."""
    embedding: Any = None
    """The model's embedding of the input (a list of floats), for embedding drift."""
    unfamiliar: bool | None = None
    """Farther from the training rows than the version's held-out rows go (trust/apply.py):
    the review queue keeps such an input."""
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    image: Any = None
    values: dict[str, Any] | None = None
    """The decoded input (a PIL image and keywords; a text and its title), handed over by
    reference, never copied: monitoring keeps it only where a person should review the answer
    (an uncertain one, or one rated low soon after), off the request path."""


class Observer(Protocol):
    """What serving tells monitoring: each prediction as it is answered (or fails). Both calls
    run on the request path, so they must only queue or count, never touch the disk."""

    def keep_thumbnail(self) -> bool:
        """Whether to hand over this prediction's input image for a thumbnail."""
        ...

    def observe(self, record: CaptureRecord) -> None:
        """Called once per prediction."""
        ...


class Unobserved:
    def keep_thumbnail(self) -> bool:
        return False

    def observe(self, record: CaptureRecord) -> None:
        pass
