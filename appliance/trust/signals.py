"""Signals: the raw scores of one answer that a calibrator may be fitted on, each in [0, 1] and
higher when the model is surer. Which of them predicts correctness best differs by model, so a
version's calibration measures them all on its held-out rows and keeps the best (calibrate.py).

For generated text, from each generated token's probability and the entropy of the distribution
it was drawn from (up to and including the end token):

- `mean_prob`: their mean (what the answer's confidence was before calibration);
- `min_prob`: the least sure token (one wrong word makes a wrong description);
- `geo_prob`: the geometric mean, the sequence's probability per token;
- `entropy`: exp(-mean entropy), 1 when every step was certain.

For labels, from the softmax scores: `max_prob`, `margin` (best less second best) and
`entropy` (1 - entropy / the most a distribution over the labels can have)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

TEXT_SIGNALS = ("mean_prob", "min_prob", "geo_prob", "entropy")
LABEL_SIGNALS = ("max_prob", "margin", "entropy")

_FLOOR = 1e-12


def token_signals(probs: Sequence[float], entropies: Sequence[float] = ()) -> dict[str, float]:
    """The signals of a generated text from its tokens' probabilities (and the entropies of
    their distributions, in nats, when known); none for an empty answer."""
    if not probs:
        return {}
    signals = {
        "mean_prob": sum(probs) / len(probs),
        "min_prob": min(probs),
        "geo_prob": math.exp(sum(math.log(max(p, _FLOOR)) for p in probs) / len(probs)),
    }
    if entropies:
        signals["entropy"] = math.exp(-sum(entropies) / len(entropies))
    return {k: round(v, 6) for k, v in signals.items()}


def label_signals(scores: Mapping[str, float]) -> dict[str, float]:
    """The signals of a classifier's answer from every label's score."""
    ranked = sorted((float(v) for v in scores.values()), reverse=True)
    if not ranked:
        return {}
    second = ranked[1] if len(ranked) > 1 else 0.0
    total = sum(ranked) or 1.0
    entropy = -sum(p / total * math.log(max(p / total, _FLOOR)) for p in ranked)
    most = math.log(len(ranked)) if len(ranked) > 1 else 1.0
    return {
        "max_prob": round(ranked[0], 6),
        "margin": round(ranked[0] - second, 6),
        "entropy": round(1.0 - entropy / most, 6),
    }
