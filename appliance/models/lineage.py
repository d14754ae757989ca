"""What a model version's lineage says about it: the recipe that trained (and so evaluates and
serves) it, and the dataset version it was trained on."""

from __future__ import annotations

from typing import Any

from appliance.errors import InvalidInput
from appliance.recipes.spec import RecipeSpec
from appliance.services import Services
from appliance.tasks import DEFAULT_TASK


def recipe_of(
    services: Services, workspace: str, version: dict[str, Any], recipe: str | None
) -> RecipeSpec:
    """The recipe given, else the one recorded with the version (its run's, or named when it
    was registered by hand)."""
    recipe = recipe or version.get("recipe")
    if recipe is None:
        raise InvalidInput(
            f"{version['name']}@{version['version']} names no recipe; register it with "
            "--recipe, or give --recipe to say which recipe evaluates and serves it"
        )
    return services.recipes.get(workspace, recipe)


def dataset_of(
    services: Services, workspace: str, version: dict[str, Any], dataset: str | None
) -> dict[str, Any]:
    if dataset is not None:
        return services.datasets.get(workspace, dataset)
    if not version["dataset_digest"]:
        raise InvalidInput(
            f"{version['name']}@{version['version']} has no dataset lineage; "
            "give --dataset NAME@VERSION to evaluate on"
        )
    return services.datasets.by_digest(version["dataset_id"], version["dataset_digest"])


def task_of(services: Services, workspace: str, version: dict[str, Any]) -> str:
    """The task recorded with the version, else the one its recipe names (image-to-text for a
    recipe from before tasks)."""
    if version.get("task"):
        return str(version["task"])
    return recipe_of(services, workspace, version, None).task or DEFAULT_TASK
