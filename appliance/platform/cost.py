"""Cost per user: per workspace, the compute its training runs and its served predictions took
in the window and the disk its datasets and models hold, priced by the `cost_*` settings and
divided by its users; and the machine's energy counters where RAPL exposes them.

What is measured, as honestly as the registry allows:
- training: a run's `cpu_seconds` metric (user + system CPU time of its child process and the
  child's children, recorded at its end) and `gpu_seconds` (its wall time, when it used CUDA);
  a run without them (logged from a notebook, or from before they were recorded) counts its
  wall time, `started_at` to `ended_at`, as CPU time, and is counted as such;
- serving: each prediction's share of its batch's forward pass (`inference_ms / batch_size`),
  as GPU time when its endpoint's deployment runs on `cuda`, else as CPU time (one core: torch's
  intra-op threads may use more);
- disk: the content-addressed blobs its dataset versions and runs' artifacts name, each counted
  once per workspace, plus its model version folders and kept review inputs, priced as held for
  the whole window.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from appliance.artifacts import ArtifactStore
from appliance.errors import NotFound
from appliance.registry import Registry
from appliance.settings import Settings

RAPL_ROOT = Path("/sys/class/powercap")
MONTH_S = 30 * 86_400
USERS_MEANING = (
    "distinct people named in the workspace's records: reviewers of its review queue and "
    "givers of platform ratings that name it; a workspace naming none counts as 1 user"
)


def cost(
    registry: Registry,
    store: ArtifactStore,
    settings: Settings,
    since: str,
    until: str,
    window_s: float,
) -> dict[str, Any]:
    rows = [
        _workspace(registry, store, settings, ws, since, until, window_s)
        for ws in registry.query("SELECT id, name FROM workspaces ORDER BY name")
    ]
    total = round(sum(r["cost"]["total"] for r in rows), 4)
    users = sum(r["users"] for r in rows)
    return {
        "prices": {
            "cpu_hour": settings.cost_cpu_hour,
            "gpu_hour": settings.cost_gpu_hour,
            "gb_month": settings.cost_gb_month,
        },
        "users_meaning": USERS_MEANING,
        "measures": {
            "training": "CPU time of each run's process (cpu_seconds), or its wall time where "
            "that was not recorded; GPU time: the wall time of runs that used CUDA",
            "serving": "each prediction's share of its batch's forward pass; GPU time when its "
            "deployment's device is cuda ('auto' counts as CPU)",
            "disk": "dataset and run artifact blobs (each once per workspace), model version "
            "folders and kept review inputs, priced as held for the whole window",
        },
        "total": total,
        "users": users,
        "per_user": round(total / users, 4) if users else None,
        "per_workspace": rows,
        "energy": energy(),
    }


def _workspace(
    registry: Registry,
    store: ArtifactStore,
    settings: Settings,
    ws: dict[str, Any],
    since: str,
    until: str,
    window_s: float,
) -> dict[str, Any]:
    training = training_seconds(registry, ws["id"], since, until)
    serving = serving_seconds(registry, ws["id"], since, until)
    disk = disk_bytes(registry, store, ws["id"])
    users, named = users_of(registry, ws["id"])
    cpu_s = training["cpu_seconds"] + serving["cpu_seconds"]
    gpu_s = training["gpu_seconds"] + serving["gpu_seconds"]
    priced = {
        "cpu": cpu_s / 3600 * settings.cost_cpu_hour,
        "gpu": gpu_s / 3600 * settings.cost_gpu_hour,
        "disk": disk["total"] / 1e9 * settings.cost_gb_month * window_s / MONTH_S,
    }
    total = sum(priced.values())
    return {
        "workspace": ws["name"],
        "training": training,
        "serving": serving,
        "disk_bytes": disk,
        "cpu_seconds": round(cpu_s, 3),
        "gpu_seconds": round(gpu_s, 3),
        "cost": {**{k: round(v, 4) for k, v in priced.items()}, "total": round(total, 4)},
        "users": users,
        "named_users": named,
        "per_user": round(total / users, 4),
    }


def training_seconds(
    registry: Registry, workspace_id: str, since: str, until: str
) -> dict[str, Any]:
    """CPU and GPU seconds of the workspace's runs that ended in [since, until)."""
    runs = registry.query(
        "SELECT r.id, r.started_at, r.ended_at,"
        " (SELECT m.value FROM run_metrics m WHERE m.run_id = r.id AND m.key = 'cpu_seconds'"
        "  ORDER BY m.step DESC LIMIT 1) AS cpu_seconds,"
        " (SELECT m.value FROM run_metrics m WHERE m.run_id = r.id AND m.key = 'gpu_seconds'"
        "  ORDER BY m.step DESC LIMIT 1) AS gpu_seconds"
        " FROM runs r WHERE r.workspace_id = ? AND r.ended_at >= ? AND r.ended_at < ?",
        (workspace_id, since, until),
    )
    cpu = gpu = 0.0
    by_wall = 0
    for run in runs:
        if run["cpu_seconds"] is not None:
            cpu += run["cpu_seconds"]
        else:
            by_wall += 1
            cpu += _wall(run["started_at"], run["ended_at"])
        gpu += run["gpu_seconds"] or 0.0
    return {
        "runs": len(runs),
        "runs_by_wall_time": by_wall,
        "cpu_seconds": round(cpu, 3),
        "gpu_seconds": round(gpu, 3),
    }


def serving_seconds(
    registry: Registry, workspace_id: str, since: str, until: str
) -> dict[str, Any]:
    """Forward-pass seconds of the workspace's predictions in [since, until), by device."""
    rows = registry.query(
        "SELECT coalesce(d.device, 'auto') = 'cuda' AS gpu, count(p.id) AS predictions,"
        " coalesce(sum(p.inference_ms / max(coalesce(p.batch_size, 1), 1)), 0) / 1000.0 AS seconds"
        " FROM predictions p LEFT JOIN deployments d"
        "  ON d.workspace_id = p.workspace_id AND d.endpoint = p.endpoint"
        " WHERE p.workspace_id = ? AND p.created_at >= ? AND p.created_at < ?"
        "  AND p.inference_ms IS NOT NULL GROUP BY 1",
        (workspace_id, since, until),
    )
    seconds = {bool(r["gpu"]): r["seconds"] for r in rows}
    return {
        "predictions": sum(r["predictions"] for r in rows),
        "cpu_seconds": round(seconds.get(False, 0.0), 3),
        "gpu_seconds": round(seconds.get(True, 0.0), 3),
    }


def disk_bytes(registry: Registry, store: ArtifactStore, workspace_id: str) -> dict[str, int]:
    """Bytes the workspace holds now: blobs once each (dataset files, manifests, run
    artifacts), model version folders, kept review inputs."""
    blobs: dict[str, int] = {}
    datasets = 0
    for version in registry.query(
        "SELECT v.digest, v.total_bytes FROM dataset_versions v"
        " JOIN datasets d ON d.id = v.dataset_id WHERE d.workspace_id = ?",
        (workspace_id,),
    ):
        files = _manifest(store, version["digest"])
        if files is None:  # the manifest is gone: its recorded size, as it was
            datasets += version["total_bytes"]
            continue
        for sha256, size in files:
            blobs.setdefault(sha256, size)
    datasets += sum(blobs.values())
    seen = len(blobs)
    for artifact in registry.query(
        "SELECT a.sha256, a.size FROM run_artifacts a JOIN runs r ON r.id = a.run_id"
        " WHERE r.workspace_id = ?",
        (workspace_id,),
    ):
        blobs.setdefault(artifact["sha256"], artifact["size"])
    runs = sum(list(blobs.values())[seen:])
    models = registry.db.execute(
        "SELECT coalesce(sum(size), 0) FROM (SELECT DISTINCT v.path, v.size FROM model_versions v"
        " JOIN models m ON m.id = v.model_id WHERE m.workspace_id = ?)",
        [workspace_id],
    ).fetchone()[0]
    review = registry.db.execute(
        "SELECT coalesce(sum(bytes), 0) FROM review_items WHERE workspace_id = ?", [workspace_id]
    ).fetchone()[0]
    return {
        "datasets": datasets,
        "runs": runs,
        "models": int(models),
        "review": int(review),
        "total": datasets + runs + int(models) + int(review),
    }


def users_of(registry: Registry, workspace_id: str) -> tuple[int, list[str]]:
    """How many users the workspace counts (at least 1), and the names that say so."""
    names = [
        r[0]
        for r in registry.db.execute(
            "SELECT reviewed_by FROM review_items WHERE workspace_id = ? AND reviewed_by != ''"
            " UNION SELECT user FROM platform_feedback WHERE workspace_id = ? AND user != ''"
            " ORDER BY 1",
            [workspace_id, workspace_id],
        ).fetchall()
    ]
    return max(1, len(names)), names


def energy(root: Path = RAPL_ROOT) -> dict[str, Any]:
    """The RAPL energy counters, where the machine exposes them to this user."""
    domains = []
    for folder in sorted(root.glob("intel-rapl*")):
        try:
            joules = int((folder / "energy_uj").read_text().strip()) / 1e6
            name = (folder / "name").read_text().strip() if (folder / "name").exists() else ""
        except (OSError, ValueError):
            continue  # unreadable (root-only since 2020 on most kernels) or not a counter
        domains.append({"domain": folder.name, "name": name, "joules": round(joules, 3)})
    if not domains:
        return {
            "available": False,
            "domains": [],
            "note": "energy: RAPL not exposed on this machine",
        }
    return {
        "available": True,
        "domains": domains,
        "note": "energy: RAPL counters since boot (they wrap), read now; the appliance does not "
        "sample them over time, so energy is not attributed to workspaces",
    }


def _manifest(store: ArtifactStore, digest: str) -> Iterable[tuple[str, int]] | None:
    try:
        data = json.loads(store.read_bytes(digest))
    except (NotFound, OSError, ValueError):
        return None
    files = [(f["sha256"], int(f["size"])) for f in data["files"]]
    return [(digest, store.path(digest).stat().st_size), *files]


def _wall(started: str | None, ended: str | None) -> float:
    if not started or not ended:
        return 0.0
    start = datetime.fromisoformat(started.replace("Z", "+00:00"))
    end = datetime.fromisoformat(ended.replace("Z", "+00:00"))
    return max((end - start).total_seconds(), 0.0)
