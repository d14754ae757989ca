"""The services of one home, built once from Settings and shared by the CLI, the Python client,
the HTTP server, the scheduler and the TUI."""

from __future__ import annotations

from functools import cached_property

from appliance.access.users import Users
from appliance.artifacts import ArtifactStore
from appliance.artifacts.gc import Collector
from appliance.datasets.service import Datasets
from appliance.events import Events
from appliance.models.service import Models
from appliance.monitoring.predictions import Predictions
from appliance.recipes.catalog import Recipes
from appliance.registry import Registry
from appliance.runs.tracking import Runs
from appliance.scheduler.jobs import Jobs
from appliance.serving.deployments import Deployments
from appliance.settings import Settings
from appliance.workspaces import Workspaces


class Services:
    def __init__(self, settings: Settings):
        self.settings = settings
        settings.home.mkdir(parents=True, exist_ok=True)
        self.registry = Registry(settings.registry_path, settings.busy_timeout_ms)

    @classmethod
    def open(cls, **overrides: object) -> Services:
        return cls(Settings.load(**overrides))  # type: ignore[arg-type]

    @cached_property
    def store(self) -> ArtifactStore:
        return ArtifactStore(self.settings.home / "artifacts")

    @cached_property
    def collector(self) -> Collector:
        """Garbage collection of the home's files (appliance gc, and after every delete)."""
        return Collector(self.registry, self.settings.home, self.settings.gc_grace_seconds)

    @cached_property
    def workspaces(self) -> Workspaces:
        return Workspaces(self.registry, self.settings.name_max_length, self.collector)

    @cached_property
    def datasets(self) -> Datasets:
        return Datasets(
            self.registry,
            self.workspaces,
            self.store,
            self.settings.home,
            max_image_pixels=self.settings.max_image_pixels,
            name_max=self.settings.name_max_length,
            collector=self.collector,
        )

    @cached_property
    def runs(self) -> Runs:
        return Runs(self.registry, self.workspaces, self.store)

    @cached_property
    def models(self) -> Models:
        return Models(
            self.registry, self.workspaces, self.settings.home, self.settings.name_max_length,
            self.collector,
        )  # fmt: skip

    @cached_property
    def recipes(self) -> Recipes:
        return Recipes(self.registry, self.workspaces)

    @cached_property
    def deployments(self) -> Deployments:
        return Deployments(self.registry, self.workspaces, self.settings.name_max_length)

    @cached_property
    def events(self) -> Events:
        return Events(self.registry)

    @cached_property
    def predictions(self) -> Predictions:
        return Predictions(self.registry, self.workspaces)

    @cached_property
    def jobs(self) -> Jobs:
        return Jobs(self.registry, self.workspaces, self.settings.name_max_length)

    @cached_property
    def users(self) -> Users:
        return Users(self.registry)

    def close(self) -> None:
        self.registry.close()

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
