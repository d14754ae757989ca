"""How each calibration choice does on streams it was not fitted on (docs/trust.md).

Measures a registered version the way its calibration does (held-out rows, their synthetic
shifts, the reference rows), fits every choice (appliance/trust/fit.py), and answers streams of
imagefolders (fresh photos, real low-light ones, an unseen category) with each: accuracy, mean
confidence, ECE, error AUROC, and the share of wrong and of right answers warned uncertain at the
threshold each choice picks on the held-out rows.

    python scripts/bench_trust.py --home H --workspace WS --model captioner@1 \\
        --stream fresh=DIR --stream low=DIR --stream cars=DIR

With `--embeddings OUT.npz --same fresh --shifted cars` it also writes the reference (training)
embeddings and two streams' embeddings for scripts/bench_embedding_drift.py --npz.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from appliance.datasets.imagefolder import METADATA
from appliance.recipes.split import split_rows
from appliance.runtimes.choose import runtime_for
from appliance.services import Services
from appliance.serving.options import DeployOptions
from appliance.trust import calibration as cal
from appliance.trust.distance import Distances, stack
from appliance.trust.fit import SHIFT_WEIGHTS, Choice, _plain_candidates, fit
from appliance.trust.measure import Outcome, measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--model", required=True, help="NAME@VERSION")
    parser.add_argument("--stream", action="append", default=[], metavar="NAME=DIR")
    parser.add_argument("--embeddings", type=Path, help="write an .npz for the drift benchmark")
    parser.add_argument(
        "--overhead",
        action="store_true",
        help="time the stored calibration on batches of 32 against the model's own forward pass",
    )
    parser.add_argument(
        "--quantization", default="none",
        help="answer the streams in this mode (calibration is always measured unquantized, as a "
        "run measures it)",
    )  # fmt: skip
    parser.add_argument("--same", help="the stream like the training data (with --embeddings)")
    parser.add_argument("--shifted", help="the stream unlike it (with --embeddings)")
    args = parser.parse_args()
    services = Services.open(home=args.home)
    version = services.models.get(args.workspace, args.model)
    data = services.datasets.by_digest(version["dataset_id"], version["dataset_digest"])
    folder = services.datasets.materialize(data)
    train, held_rows = split_rows(services.datasets.rows(data))
    runtime = runtime_for(services, version, DeployOptions("none", "cpu", 32, 0), calibrated=False)
    runtime.load()
    measured = measure(runtime.predict, runtime.task, folder, train, held_rows)
    if args.quantization != "none":
        runtime.unload()
        options = DeployOptions(args.quantization, "cpu", 32, 0)
        runtime = runtime_for(services, version, options, calibrated=False)
        runtime.load()
    streams = {}
    for spec in args.stream:
        name, _, path = spec.partition("=")
        base = Path(path)
        lines = (base / METADATA).read_text().splitlines()
        rows = [json.loads(line) for line in lines if line]
        examples = [runtime.task.example(base, row) for row in rows]
        predictions = []
        for start in range(0, len(examples), 32):
            predictions += runtime.predict(examples[start : start + 32])
        streams[name] = [
            Outcome(p.signals, p.confidence, p.embedding, runtime.task.correct(p, row))
            for p, row in zip(predictions, rows, strict=True)
        ]
    if args.overhead:
        _overhead(services, version, runtime, [runtime.task.example(folder, r) for r in held_rows])
    runtime.unload()
    if args.embeddings:
        np.savez(
            args.embeddings, reference=measured.reference,
            same=stack([o.embedding for o in streams[args.same]]),
            shifted=stack([o.embedding for o in streams[args.shifted]]),
        )  # fmt: skip

    held, shifted = measured.part(False), measured.part(True)
    kept = fit(measured).trust["kept"]
    _, signal, method = _plain_candidates(held, _y(held), 0)
    distances = Distances(measured.reference) if measured.reference is not None else None
    if distances is not None:
        distances.scale = float(np.median(distances.raw(stack([o.embedding for o in held]))))
    choices = [Choice("plain", signal, method, None, 0.0)]
    if distances is not None:
        choices += [Choice(f"distance@{w:g}", signal, method, distances, w) for w in SHIFT_WEIGHTS]
    print(f"{args.model}: {len(held)} held-out rows, {len(shifted)} shifted; kept: {kept}")
    print("| choice | stream | accuracy | confidence | ECE | error AUROC | wrong warned "
          "| right warned |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    raw = np.array([o.confidence for o in held])
    print(f"| raw | held out | {_y(held).mean():.2f} | {raw.mean():.2f} | "
          f"{cal.ece(raw, _y(held)):.3f} | {cal.error_auroc(raw, _y(held)):.2f} | | |")  # fmt: skip
    for choice in choices:
        calibrator = choice.fit(held, shifted)
        on_held = choice.held_out(calibrator, held, 0)
        threshold = cal.choose_threshold(on_held, _y(held))["threshold"]
        answered = {"held out": (on_held, _y(held)), **{
            name: (calibrator.apply(choice.features(s)), _y(s)) for name, s in streams.items()
        }}  # fmt: skip
        for name, (p, y) in answered.items():
            wrong = f"{(p[~y] < threshold).mean():.2f}" if (~y).any() else "–"
            right = f"{(p[y] < threshold).mean():.2f}" if y.any() else "–"
            print(f"| {choice.name} | {name} | {y.mean():.2f} | {p.mean():.2f} | "
                  f"{cal.ece(p, y):.3f} | {cal.error_auroc(p, y):.2f} | {wrong} "
                  f"| {right} |")  # fmt: skip


def _overhead(services: Services, version: dict, runtime: Any, examples: list[Any]) -> None:
    """Best of 9 timings of a batch of 32 through the model, and through the version's stored
    calibration (its share of the batch), plus storing the 32 embeddings as capture does."""
    import time

    from appliance.monitoring.embeddings import to_blob
    from appliance.runtimes.choose import trust_of

    trust = trust_of(services, version)
    if trust is None:
        print("the version has no stored calibration")
        return
    batch = examples[:32]
    answers = runtime.predict(batch)

    def best(work: Any) -> float:
        times = []
        for _ in range(9):
            started = time.perf_counter()
            work()
            times.append(time.perf_counter() - started)
        return min(times) * 1000

    model_ms = best(lambda: runtime.predict(batch))
    trust_ms = best(lambda: trust.apply(answers))
    blob_ms = best(lambda: [to_blob(np.asarray([a.embedding])) for a in answers])
    print(f"batch of {len(batch)}: model {model_ms:.2f} ms, calibration {trust_ms:.3f} ms "
          f"({trust_ms / model_ms:.1%}), embeddings stored {blob_ms:.3f} ms "
          f"({blob_ms / model_ms:.1%}); kept: {trust.calibrator.method}")  # fmt: skip


def _y(rows: list[Outcome]) -> np.ndarray:
    return np.array([o.correct for o in rows], dtype=bool)


if __name__ == "__main__":
    main()
