"""A version's calibration in the registry (`version_trust`): the JSON of fit.py, and its
reference embeddings as float16 rows."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from appliance.registry import Registry, utcnow

if TYPE_CHECKING:  # numpy only where embeddings are read or written: `summary` is the TUI's
    import numpy as np

    from appliance.trust.fit import Fitted


def save(registry: Registry, version_id: str, fitted: Fitted) -> None:
    reference = fitted.reference
    blob = None if reference is None else to_blob(reference)
    dims = 0 if reference is None else int(reference.shape[1])
    registry.write(
        lambda db: db.execute(
            "INSERT OR REPLACE INTO version_trust (model_version_id, trust, reference, dims,"
            " created_at) VALUES (?, ?, ?, ?, ?)",
            [version_id, json.dumps(fitted.trust), blob, dims, utcnow()],
        ).close()
    )


def load(registry: Registry, version_id: str) -> tuple[dict[str, Any], np.ndarray | None] | None:
    """The version's calibration and reference embeddings; None for a version without one."""
    rows = registry.query(
        "SELECT trust, reference, dims FROM version_trust WHERE model_version_id = ?",
        (version_id,),
    )
    if not rows:
        return None
    row = rows[0]
    reference = from_blob(row["reference"], row["dims"]) if row["reference"] else None
    return json.loads(row["trust"]), reference


def summary(registry: Registry, version_id: str) -> dict[str, Any] | None:
    """The calibration's JSON alone (no embeddings), for `model show` and the TUI."""
    rows = registry.query(
        "SELECT trust FROM version_trust WHERE model_version_id = ?", (version_id,)
    )
    return json.loads(rows[0]["trust"]) if rows else None


def to_blob(embeddings: np.ndarray) -> bytes:
    import numpy as np

    return np.ascontiguousarray(embeddings, dtype="<f2").tobytes()


def from_blob(data: bytes, dims: int) -> np.ndarray:
    import numpy as np

    if dims <= 0 or len(data) % (2 * dims):
        raise ValueError(f"{len(data)} bytes are not rows of {dims} float16 values")
    return np.frombuffer(data, dtype="<f2").astype(np.float32).reshape(-1, dims)
