"""The held-out scores a task gates on when no recipe evaluates its model (a folder served by
the Hugging Face runtime): exact match and corpus BLEU for descriptions, accuracy and macro F1
for labels. A recipe's own evaluate() may report more."""

from __future__ import annotations

from collections.abc import Sequence


def text_scores(predicted: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    import sacrebleu

    exact = [p == r for p, r in zip(predicted, references, strict=True)]
    return {
        "exact_match": sum(exact) / max(1, len(exact)),
        "bleu": float(sacrebleu.corpus_bleu(list(predicted), [list(references)]).score)
        if exact
        else 0.0,
    }


def label_scores(predicted: Sequence[str], truth: Sequence[str]) -> dict[str, float]:
    """Accuracy, macro F1 over the labels seen on either side, and `acc_<label>` per label."""
    hits = [p == t for p, t in zip(predicted, truth, strict=True)]
    metrics = {"accuracy": sum(hits) / max(1, len(hits))}
    f1s = []
    for label in sorted({*truth, *predicted}):
        tp = sum(h and t == label for h, t in zip(hits, truth, strict=True))
        support, claimed = list(truth).count(label), list(predicted).count(label)
        f1s.append(2 * tp / (support + claimed) if support + claimed else 0.0)
        if support:
            metrics[f"acc_{label}"] = tp / support
    metrics["macro_f1"] = sum(f1s) / max(1, len(f1s))
    return metrics
