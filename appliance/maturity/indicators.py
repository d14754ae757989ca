"""The indicators the report shows, in its order: Tech first, then Process. Each is a function
of what the workspace's records show (`Observed`) to an `Indicator`."""

from __future__ import annotations

from collections.abc import Callable

from appliance.maturity import process, tech
from appliance.maturity.observed import Indicator, Observed

INDICATORS: tuple[Callable[[Observed], Indicator], ...] = (
    tech.versioned_data_and_models,
    tech.experiment_tracking,
    tech.evaluation_gate,
    tech.ci_cd,
    tech.monitoring,
    tech.automated_rollback,
    tech.serving,
    process.short_iteration_cycles,
    process.end_user_feedback,
    process.frequent_deployments,
    process.change_failure_and_restore,
    process.human_review,
    process.scheduled_retraining,
)


def observe(observed: Observed) -> list[Indicator]:
    return [indicator(observed) for indicator in INDICATORS]
