"""Promotion through the evaluation gate: before an alias such as `production` moves, the
candidate and the version holding the alias are evaluated on the same held-out rows with the
gate metric (its recipe's, or its task's for a folder served without a recipe), and a worse
candidate (beyond the tolerance) is refused unless forced."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appliance.errors import ApplianceError, Conflict, InvalidInput
from appliance.events import record_event
from appliance.models.evaluation import evaluate_version, gate_of
from appliance.models.lineage import dataset_of
from appliance.recipes.split import split_rows
from appliance.services import Services


class GateRefused(Conflict):
    """The candidate scored worse than the version holding the alias."""


@dataclass(frozen=True)
class GateResult:
    candidate: dict[str, Any]
    current: dict[str, Any] | None
    metric: str
    candidate_value: float | None
    current_value: float | None
    dataset: str
    rows: int
    forced: bool
    also: tuple[tuple[str, float, float | None], ...] = ()
    """The gate's further metrics both versions produced: (metric, candidate, current)."""

    def summary(self) -> str:
        if self.candidate_value is None:
            return f"{self.metric} not evaluated (forced, with no dataset to evaluate on)"
        where = f"on {self.rows} held-out rows of {self.dataset}"
        others = "".join(
            f", {m} {c:.4f}" + (f" vs {p:.4f}" if p is not None else "") for m, c, p in self.also
        )
        if self.current is None or self.current_value is None:
            return (
                f"{self.metric} {self.candidate_value:.4f}{others} {where} "
                "(no version held it before)"
            )
        return (
            f"{self.metric} {self.candidate_value:.4f} vs {self.current_value:.4f}{others} for "
            f"version {self.current['version']}, {where}"
        )


def promote(
    services: Services,
    workspace: str,
    ref: str,
    alias: str = "production",
    *,
    force: bool = False,
    dataset: str | None = None,
    recipe: str | None = None,
) -> GateResult:
    """Move `alias` to the version `ref` once the gate passes. The candidate is always
    evaluated, also when no version holds the alias yet (its numbers are shown, and a version
    that cannot produce any is refused); only `force` without any dataset to evaluate on skips
    it."""
    candidate = services.models.get(workspace, ref)
    name = candidate["name"]
    holder = services.models.aliases(workspace, name).get(alias)
    current = services.models.get(workspace, f"{name}@{holder}") if holder else None
    if current is not None and current["id"] == candidate["id"]:
        current = None
    gate = gate_of(services, workspace, candidate, recipe)
    metric = gate.metric
    try:
        version = dataset_of(services, workspace, candidate, dataset)
    except InvalidInput:
        if not force:
            raise
        result = GateResult(candidate, current, metric, None, None, "-", 0, force)
        return _promote(services, workspace, alias, result)
    dataset_dir = services.datasets.materialize(version)
    _, held_out = split_rows(services.datasets.rows(version))
    label = f"{version['name']}@{version['version']}"
    scored = [
        _metrics(services, workspace, v, dataset_dir, held_out, recipe, metric)
        for v in ((candidate, current) if current is not None else (candidate,))
    ]
    mine, theirs = scored[0], scored[1] if current is not None else None
    # The further metrics count where the candidate produced them (and the holder too, to
    # compare): a dataset without keywords gives no keyword_adherence.
    also = tuple(
        (c.metric, mine[c.metric], theirs.get(c.metric) if theirs else None)
        for c in gate.also if c.metric in mine
    )  # fmt: skip
    result = GateResult(
        candidate, current, metric, mine[metric], theirs[metric] if theirs else None, label,
        len(held_out), force, also,
    )  # fmt: skip
    worse = [
        check for check in gate.checks
        if theirs is not None and check.metric in mine and check.metric in theirs
        and check.worse_beyond_tolerance(mine[check.metric], theirs[check.metric])
    ]  # fmt: skip
    if current is not None and theirs is not None and worse and not force:
        _record(services, workspace, "promotion_refused", alias, result)
        scores = ", ".join(
            f"{c.metric} {mine[c.metric]:.4f} vs {theirs[c.metric]:.4f} (tolerance {c.tolerance})"
            for c in worse
        )
        where = f"{len(held_out)} held-out rows of {label}"
        raise GateRefused(
            f"{name}@{candidate['version']} is worse than {alias} "
            f"({name}@{current['version']}): {scores} on {where}; pass --force to promote anyway"
        )
    return _promote(services, workspace, alias, result)


def _promote(services: Services, workspace: str, alias: str, result: GateResult) -> GateResult:
    candidate = result.candidate
    services.models.set_alias(workspace, f"{candidate['name']}@{candidate['version']}", alias)
    _record(services, workspace, "promoted", alias, result)
    return result


def _metrics(
    services: Services,
    workspace: str,
    version: dict[str, Any],
    dataset_dir: Any,
    rows: list[dict[str, Any]],
    recipe: str | None,
    metric: str,
) -> dict[str, float]:
    """The metrics of `version` on `rows`; a version that cannot produce `metric` is refused."""
    ref = f"{version['name']}@{version['version']}"
    try:
        metrics = evaluate_version(services, workspace, version, dataset_dir, rows, recipe)
    except ApplianceError as exc:
        raise GateRefused(f"{ref} could not be evaluated: {exc}") from None
    if metric not in metrics:
        known = ", ".join(sorted(metrics)) or "none"
        raise GateRefused(f"{ref} produced no {metric} on {len(rows)} rows (it gave: {known})")
    return {k: float(v) for k, v in metrics.items()}


def _record(services: Services, workspace: str, kind: str, alias: str, result: GateResult) -> None:
    ws_id = services.workspaces.get(workspace)["id"]
    candidate = result.candidate
    services.registry.write(
        lambda db: record_event(
            db, ws_id, kind, f"{candidate['name']}@{alias}",
            model_version_id=candidate["id"], version=candidate["version"],
            previous=result.current["version"] if result.current else None,
            metric=result.metric, candidate_value=result.candidate_value,
            current_value=result.current_value, dataset=result.dataset, forced=result.forced,
            also=[
                {"metric": m, "candidate_value": c, "current_value": p} for m, c, p in result.also
            ],
        )
    )  # fmt: skip
