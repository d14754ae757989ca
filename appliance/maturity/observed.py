"""What every indicator is given: the workspace, the window, its DORA figures and read access to
the registry; and what each one answers, an `Indicator` with a verdict and its evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from appliance.monitoring.dora import Dora, parse_time
from appliance.services import Services

YES, PARTLY, NO = "yes", "partly", "no"
VERDICTS = (YES, PARTLY, NO)
TECH, PROCESS = "tech", "process"


@dataclass(frozen=True)
class Indicator:
    """One maturity indicator as observed: `evidence` is a sentence a person reads (for a "no",
    what is missing), `figures` the numbers it rests on."""

    id: str
    area: str  # "tech" or "process"
    name: str
    verdict: str  # "yes", "partly" or "no"
    evidence: str
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Observed:
    services: Services
    workspace: dict[str, Any]  # the workspaces row
    since: datetime
    until: datetime
    dora: Dora
    events: list[dict[str, Any]]  # the workspace's whole event log, oldest first (details parsed)

    @property
    def ws_id(self) -> str:
        return str(self.workspace["id"])

    @property
    def since_text(self) -> str:
        return iso(self.since)

    @property
    def until_text(self) -> str:
        return iso(self.until)

    @property
    def window(self) -> str:
        """The window's length for a sentence: '30 d', '12 h'."""
        return duration((self.until - self.since).total_seconds() / 3600)

    def query(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        return self.services.registry.query(sql, params)

    def one(self, sql: str, *params: Any) -> dict[str, Any]:
        rows = self.query(sql, *params)
        return rows[0] if rows else {}

    def ago(self, text: str | None) -> str:
        """'2 h ago' for a stored timestamp, measured from the end of the window."""
        if not text:
            return "never"
        hours = (self.until - parse_time(text)).total_seconds() / 3600
        return "just now" if hours < 1 / 60 else f"{duration(hours)} ago"


def duration(hours: float) -> str:
    """Hours as a short length: '45 s', '1.9 min', '5.2 h', '3 d'."""
    seconds = hours * 3600
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.2g} min"
    if hours < 48:
        return f"{hours:.2g} h"
    return f"{hours / 24:.3g} d"


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"


def by_whom(counts: dict[str, int]) -> str:
    """Who did something how often, for a sentence: 'ann (2), bob (1)'; '' for no one."""
    return ", ".join(f"{actor} ({count})" for actor, count in counts.items() if count)


def counted(dora: Dora, what: str) -> dict[str, int]:
    """Per actor (`Dora.authors`), how many `what` ('deployments', 'promotions' or 'approvals')
    they made in the window; those who made none are left out."""
    counts = {actor: getattr(author, what) for actor, author in dora.authors.items()}
    return {actor: count for actor, count in counts.items() if count}


def iso(moment: datetime) -> str:
    """A moment in the registry's own timestamp format, comparable with stored text."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
