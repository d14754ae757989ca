"""Tasks: what a kind of model takes and answers (contract.py), by name. The built-in ones are
here; other packages add theirs through the `appliance.tasks` entry point group, each entry
naming a Task object or a class to instantiate (`mytask = "my_pkg.tasks:Summarize"`)."""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

from appliance.errors import InvalidInput
from appliance.tasks.contract import Field, PredictInput, Prediction, RawInput, Task

__all__ = [
    "DEFAULT_TASK", "Field", "PredictInput", "Prediction", "RawInput", "Task", "get_task",
    "task_names",
]  # fmt: skip

DEFAULT_TASK = "image-to-text"
"""The task of a recipe that names none: every recipe before tasks was a captioner."""

BUILTIN = {
    "image-to-text": "appliance.tasks.image_to_text:ImageToText",
    "text-classification": "appliance.tasks.text_classification:TextClassification",
    "image-classification": "appliance.tasks.image_classification:ImageClassification",
    "image-text-to-text": "appliance.tasks.image_text_to_text:ImageTextToText",
}


@cache
def _known() -> dict[str, str]:
    from importlib.metadata import entry_points

    found = dict(BUILTIN)
    for entry in entry_points(group="appliance.tasks"):
        found.setdefault(entry.name, entry.value)  # a plug-in never replaces a built-in task
    return found


def task_names() -> list[str]:
    return sorted(_known())


@cache
def get_task(name: str) -> Task:
    """The task called `name`; an unknown name says which exist."""
    target = _known().get(name)
    if target is None:
        known = ", ".join(task_names())
        raise InvalidInput(f"no task '{name}' (known: {known}); set `task` in recipe.toml")
    module, _, attribute = target.partition(":")
    loaded: Any = getattr(importlib.import_module(module), attribute)
    return loaded() if isinstance(loaded, type) else loaded
