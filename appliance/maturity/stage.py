"""The overall stage from the indicators' verdicts: a score is the share of indicators met, a
"partly" counting half, and the stage is the highest whose floor the score reaches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from appliance.maturity.observed import NO, PARTLY, YES, Indicator

# What a "partly" is worth: half met (a practice in place but not yet seen working, or in part).
PARTLY_WEIGHT = 0.5
# Each stage's floor, best first; below the last floor a workspace is "immature". Quarters:
# "developing" once a quarter of the practices show, "defined" at half, "mature" at three in four.
STAGES = (("mature", 0.75), ("defined", 0.5), ("developing", 0.25))
LOWEST = "immature"
RULE = (
    "score = (yes + 0.5 × partly) / indicators; immature below 0.25, developing from 0.25,"
    " defined from 0.5, mature from 0.75"
)


@dataclass(frozen=True)
class Stage:
    name: str
    score: float
    yes: int
    partly: int
    no: int
    total: int
    rule: str = RULE


def stage_for(score: float) -> str:
    for name, floor in STAGES:
        if score >= floor:
            return name
    return LOWEST


def judge(indicators: Sequence[Indicator]) -> Stage:
    verdicts = [i.verdict for i in indicators]
    unknown = sorted(set(verdicts) - {YES, PARTLY, NO})
    if unknown:
        raise ValueError(f"unknown verdict(s) {', '.join(unknown)}")
    if not verdicts:
        raise ValueError("no indicator to judge")
    yes, partly = verdicts.count(YES), verdicts.count(PARTLY)
    # Unrounded for the stage: 3 of 12 is exactly 0.25 and must reach "developing".
    score = (yes + PARTLY_WEIGHT * partly) / len(verdicts)
    return Stage(stage_for(score), round(score, 4), yes, partly, verdicts.count(NO), len(verdicts))
