"""Promotion through the evaluation gate: before an alias such as `production` moves, the
candidate and the version holding the alias are evaluated on the same held-out rows with the
recipe's gate metric, and a worse candidate (beyond the tolerance) is refused unless forced."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appliance.errors import Conflict
from appliance.events import record_event
from appliance.models.lineage import dataset_of, recipe_of
from appliance.models.loading import quiet_offline_transformers
from appliance.recipes.catalog import load_module
from appliance.recipes.context import EvalContext, SilentReporter
from appliance.recipes.spec import RecipeSpec
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

    def summary(self) -> str:
        if self.current is None or self.current_value is None:
            value = "n/a" if self.candidate_value is None else f"{self.candidate_value:.4f}"
            return f"{self.metric} {value} (no version held the alias before)"
        return (
            f"{self.metric} {self.candidate_value:.4f} vs {self.current_value:.4f} for "
            f"version {self.current['version']}, on {self.rows} held-out rows of {self.dataset}"
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
    candidate = services.models.get(workspace, ref)
    name = candidate["name"]
    holder = services.models.aliases(workspace, name).get(alias)
    current = services.models.get(workspace, f"{name}@{holder}") if holder else None
    spec = recipe_of(services, workspace, candidate, recipe)
    metric = spec.gate.metric
    if current is None or current["id"] == candidate["id"]:
        result = GateResult(
            candidate, None, metric, candidate["metrics"].get(metric), None, "-", 0, force
        )
    else:
        version = dataset_of(services, workspace, candidate, dataset)
        dataset_dir = services.datasets.materialize(version)
        _, held_out = split_rows(services.datasets.rows(version))
        label = f"{version['name']}@{version['version']}"
        values = [
            evaluate_version(services, spec, v, dataset_dir, held_out)[metric]
            for v in (candidate, current)
        ]
        result = GateResult(
            candidate, current, metric, values[0], values[1], label, len(held_out), force
        )
        if spec.gate.worse_beyond_tolerance(values[0], values[1]) and not force:
            _record(services, workspace, "promotion_refused", alias, result)
            scores = f"{metric} {values[0]:.4f} vs {values[1]:.4f}"
            where = f"{len(held_out)} held-out rows of {label}"
            raise GateRefused(
                f"{name}@{candidate['version']} is worse than {alias} "
                f"({name}@{current['version']}): {scores} on {where} "
                f"(tolerance {spec.gate.tolerance}); pass --force to promote anyway"
            )
    services.models.set_alias(workspace, f"{name}@{candidate['version']}", alias)
    _record(services, workspace, "promoted", alias, result)
    return result


def evaluate_version(
    services: Services,
    spec: RecipeSpec,
    version: dict[str, Any],
    dataset_dir: Any,
    rows: list[dict[str, Any]],
) -> dict[str, float]:
    quiet_offline_transformers()
    module = load_module(spec)
    folder = services.models.folder(version)
    context = EvalContext(folder, dataset_dir, rows, params={}, report=SilentReporter())
    return dict(module.evaluate(context))


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
        )
    )  # fmt: skip
