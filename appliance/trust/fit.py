"""Fitting a version's calibration from what `measure` answered.

1. **The best signal and calibrator on the held-out rows.** Every signal the answers carry
   (`trust.signals`), each calibrated by Platt scaling and by isotonic regression, is judged
   out of fold on the held-out rows by its Brier score (ECE alone would prefer a constant
   answer at the base rate); the best pair is the *plain* calibration.
2. **The distance from the training data.** A calibration fitted on rows like the training data
   does not transfer to inputs unlike it. Where answers carry embeddings, logistic calibrations
   on the chosen signal's logit and the input's distance from the training rows (distance.py)
   are fitted on the held-out rows together with their synthetic shifts, each shifted row
   counting for `SHIFT_WEIGHTS` of a held-out one (live traffic is mostly like the training
   data, and the calibration must stay right for it).
3. **Judged where it matters.** Each choice is judged by its Brier score on the held-out rows
   and on the shifted rows measured leave-one-shift-out (fitted without the rows of one shift,
   judged on them, for every shift in turn): a calibration must be right on a kind of shift it
   has never seen, without giving up familiar inputs. Kept is the best on the shifts among the
   choices whose held-out Brier score is within `HELD_OUT_TOLERANCE` of the plain one's (on
   the demo's v1 a sum of the two would pick shifted rows counting fully, and triple the
   held-out ECE); its figures are what `ece_shifted` and `error_auroc_shifted` report.
4. **The uncertain threshold**: the lowest calibrated confidence that warns on the target share
   of the wrong held-out answers (`choose_threshold`), with its precision and recall.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from appliance.trust import calibration as cal
from appliance.trust.distance import Distances, stack
from appliance.trust.measure import Measured, Outcome

MIN_ROWS = 20
"""Fewer held-out rows than this give no calibration: the version serves its own confidence."""
METHODS: dict[str, Callable[[Any, Any], cal.Calibrator]] = {
    "platt": cal.fit_platt,
    "isotonic": cal.fit_isotonic,
}
SHIFT_WEIGHTS = (0.1, 0.3, 1.0)
"""What one shifted row counts for, against a held-out row's 1, in the distance calibrations."""
L2 = 1e-4
"""The distance calibration's penalty on its (standardised) weights: enough to keep separable
rows finite; fit_logistic's default 1e-2 holds the weights to a few units, too flat to keep
familiar inputs' confidence where the plain calibration has it."""
HELD_OUT_TOLERANCE = (0.1, 0.002)
"""How much worse than the plain calibration's a choice's held-out Brier may be: relative, plus
an absolute allowance for a plain one near 0 (a model almost always right)."""


@dataclass(frozen=True)
class Fitted:
    trust: dict[str, Any]
    """What serving applies and `model show` reports (JSON; see `Trust` in apply.py)."""
    reference: np.ndarray | None
    """The training rows' embeddings (None where answers carry none), kept with the version:
    a distance calibration reads them when serving, embedding drift compares with them."""


class TooFewRows(ValueError):
    pass


def fit(measured: Measured, target_recall: float = 0.7, seed: int = 0) -> Fitted:
    held = measured.part(shifted=False)
    if len(held) < MIN_ROWS:
        raise TooFewRows(f"{len(held)} held-out rows; calibration needs at least {MIN_ROWS}")
    correct = _correct(held)
    candidates, signal, method = _plain_candidates(held, correct, seed)
    raw = np.array([o.confidence for o in held])
    distances = _distances(measured, held)
    shifted = measured.part(shifted=True)

    choices = [Choice("plain", signal, method, None, 0.0)]
    if distances is not None and shifted:
        choices += [Choice(f"distance@{w:g}", signal, method, distances, w) for w in SHIFT_WEIGHTS]
    judged = {c.name: c.judge(held, shifted, seed) for c in choices}
    relative, absolute = HELD_OUT_TOLERANCE
    limit = judged["plain"]["held_out"]["brier"] * (1 + relative) + absolute
    eligible = [c for c in choices if judged[c.name]["held_out"]["brier"] <= limit]
    kept = min(eligible, key=lambda c: judged[c.name].get("shifted", {}).get("brier", 0.0))
    calibrator = kept.fit(held, shifted)
    confidence = kept.held_out(calibrator, held, seed)
    threshold = cal.choose_threshold(confidence, correct, target_recall)
    metrics = {
        "ece": cal.ece(confidence, correct),
        "ece_raw": cal.ece(raw, correct),
        "error_auroc": cal.error_auroc(confidence, correct),
        "error_auroc_raw": cal.error_auroc(raw, correct),
        "heldout_accuracy": float(correct.mean()),
    }
    if shifted:
        metrics["ece_shifted"] = judged[kept.name]["shifted"]["ece"]
        metrics["error_auroc_shifted"] = judged[kept.name]["shifted"]["error_auroc"]
        metrics["accuracy_shifted"] = float(_correct(shifted).mean())
    trust = {
        "signal": signal,
        "method": method,
        "kept": kept.name,
        "calibrator": calibrator.to_json(),
        "distance": _distance_record(distances, held),
        "uncertain": threshold,
        "target_recall": target_recall,
        "metrics": {k: round(v, 4) for k, v in metrics.items()},
        "reliability": cal.reliability(confidence, correct),
        "candidates": candidates,
        "judged": judged,
        "rows": {"held_out": len(held), "shifted": len(shifted)},
    }
    # The reference embeddings are kept whichever calibrator won: embedding drift compares live
    # embeddings with them too. Only a distance calibration reads them when serving.
    return Fitted(trust, measured.reference)


@dataclass(frozen=True)
class Choice:
    """One way to calibrate: the plain calibration of the signal (`distances` None), or a
    logistic one on the signal's logit and the distance from the training rows, fitted on the
    held-out rows and their shifts, each shifted row counting `weight`."""

    name: str
    signal: str
    method: str
    distances: Distances | None
    weight: float

    def features(self, rows: Sequence[Outcome]) -> np.ndarray:
        if self.distances is None:
            return _signal(rows, self.signal)
        return _features(rows, self.signal, self.distances)

    def fit(self, held: Sequence[Outcome], shifted: Sequence[Outcome]) -> cal.Calibrator:
        if self.distances is None:
            return METHODS[self.method](self.features(held), _correct(held))
        rows = [*held, *shifted]
        weights = np.r_[np.ones(len(held)), np.full(len(shifted), self.weight)]
        return cal.fit_logistic(self.features(rows), _correct(rows), l2=L2, weights=weights)

    def held_out(
        self, calibrator: cal.Calibrator, held: Sequence[Outcome], seed: int
    ) -> np.ndarray:
        """Its confidences on the held-out rows: out of fold for the plain one (a step function
        judged on the rows it was fitted on would flatter itself); the logistic one's three
        coefficients, fitted on these rows and the shifts, on them as they are."""
        if self.distances is None:
            fitter = METHODS[self.method]
            p = cal.out_of_fold(fitter, self.features(held), _correct(held), seed=seed)
            return np.clip(p, *cal.CLIP)  # as a calibrator answers (a one-class fold gives 0)
        return calibrator.apply(self.features(held))

    def judge(
        self, held: Sequence[Outcome], shifted: Sequence[Outcome], seed: int
    ) -> dict[str, Any]:
        """Its Brier score and ECE on the held-out rows, and on the shifted rows leave-one-
        shift-out (per shift too)."""
        y = _correct(held)
        p = self.held_out(self.fit(held, shifted), held, seed)
        result: dict[str, Any] = {
            "held_out": {"brier": round(cal.brier(p, y), 4), "ece": round(cal.ece(p, y), 4)},
        }
        if shifted:
            result["shifted"] = self._leave_one_shift_out(held, shifted)
        return result

    def _leave_one_shift_out(
        self, held: Sequence[Outcome], shifted: Sequence[Outcome]
    ) -> dict[str, Any]:
        confidence, correct, per_shift = [], [], {}
        for kind in sorted({o.shift for o in shifted}):
            left_out = [o for o in shifted if o.shift == kind]
            others = [o for o in shifted if o.shift != kind]
            p, y = self.fit(held, others).apply(self.features(left_out)), _correct(left_out)
            confidence.append(p)
            correct.append(y)
            per_shift[kind] = {
                "accuracy": round(float(y.mean()), 4), "confidence": round(float(p.mean()), 4),
                "error_auroc": round(cal.error_auroc(p, y), 4),
            }  # fmt: skip
        p, y = np.concatenate(confidence), np.concatenate(correct)
        return {
            "brier": round(cal.brier(p, y), 4), "ece": round(cal.ece(p, y), 4),
            "error_auroc": round(cal.error_auroc(p, y), 4), "per_shift": per_shift,
        }  # fmt: skip


def _correct(rows: Sequence[Outcome]) -> np.ndarray:
    return np.array([o.correct for o in rows], dtype=bool)


def _signal(rows: Sequence[Outcome], name: str) -> np.ndarray:
    return np.array([o.signals.get(name, o.confidence) for o in rows], dtype=np.float64)


def _features(rows: Sequence[Outcome], signal: str, distances: Distances) -> np.ndarray:
    """Per row: the signal's logit and the log of the distance from the training rows (a far
    input's distance is tens of times a near one's: on a log scale one linear term fits both)."""
    embeddings = stack([o.embedding for o in rows])
    assert embeddings is not None  # `_distances` checked that every answer has one
    return features(_signal(rows, signal), distances(embeddings))


def features(signal: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """The distance calibration's inputs: logit(signal) and log(distance), one row each."""
    x = np.clip(signal, 1e-4, 1 - 1e-4)  # a signal of exactly 1 is not infinitely sure
    return np.column_stack([np.log(x / (1 - x)), np.log(np.maximum(distance, 1e-6))])


def _plain_candidates(
    held: Sequence[Outcome], correct: np.ndarray, seed: int
) -> tuple[list[dict[str, Any]], str, str]:
    """Every (signal, method) judged out of fold on the held-out rows, and the best pair."""
    names = sorted(set.intersection(*(set(o.signals) for o in held))) or ["confidence"]
    candidates: list[dict[str, Any]] = []
    for name in names:
        x = _signal(held, name)
        for method, fitter in METHODS.items():
            p = cal.out_of_fold(fitter, x, correct, seed=seed)
            candidates.append({
                "signal": name, "method": method, "brier": round(cal.brier(p, correct), 4),
                "ece": round(cal.ece(p, correct), 4),
                "error_auroc": round(cal.error_auroc(p, correct), 4),
            })  # fmt: skip
    best = min(candidates, key=lambda c: (c["brier"], -c["error_auroc"]))
    return candidates, best["signal"], best["method"]


UNFAMILIAR_QUANTILE = 0.99
"""An input farther from the training rows than this share of the held-out rows is unfamiliar."""


def _distance_record(distances: Distances | None, held: Sequence[Outcome]) -> dict[str, Any] | None:
    """What serving needs of the distance: its scale and k (a distance calibration reads them),
    and `unfamiliar`, the held-out rows' UNFAMILIAR_QUANTILE distance: farther than that, an
    answer's input is queued for review (appliance/review/keeper.py)."""
    if distances is None:
        return None
    embeddings = stack([o.embedding for o in held])
    assert embeddings is not None  # `_distances` checked that every answer has one
    far = float(np.quantile(distances(embeddings), UNFAMILIAR_QUANTILE))
    return {"scale": distances.scale, "k": distances.k, "unfamiliar": round(far, 4)}


def _distances(measured: Measured, held: Sequence[Outcome]) -> Distances | None:
    """Distances scaled by the held-out rows' median; None unless the reference and every
    answer have embeddings."""
    if measured.reference is None or len(measured.reference) < 2:
        return None
    embeddings = stack([o.embedding for o in measured.outcomes])
    if embeddings is None or embeddings.shape[1] != measured.reference.shape[1]:
        return None
    distances = Distances(measured.reference)
    held_embeddings = stack([o.embedding for o in held])
    assert held_embeddings is not None
    distances.scale = float(np.median(distances.raw(held_embeddings))) or 1.0
    return distances
