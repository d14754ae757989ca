"""Deterministic synthetic classified-ad texts (title + text → category), for the text-classifier.

`generate` writes a folder holding `metadata.jsonl` only: one ad a line, with its `label` and the
attributes it was drawn from. Learnable, not trivially: varied phrasing, words shared across
categories, ads that mention another category's product, a few that name no product at all, and
typos at a small rate.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from appliance.datasets.ad_words import (
    COLOURS,
    CONDITIONS,
    GENERIC_TITLES,
    LOGISTICS,
    WORDS,
)
from appliance.datasets.synthetic import check_categories
from appliance.errors import Conflict, InvalidInput

CATEGORIES: tuple[str, ...] = tuple(WORDS)  # the photo generator's, `car` included
DEFAULT_CATEGORIES: tuple[str, ...] = tuple(c for c in CATEGORIES if c != "car")
MAX_COUNT = 100_000
METADATA = "metadata.jsonl"

GENERIC_TITLE_RATE = 0.15  # the title names no product; the text still does, or its details
VAGUE_RATE = 0.03  # neither names a product nor gives a detail: only the price hints
MENTION_RATE = 0.12  # the text also names another category's product
TYPO_RATE = 0.02  # per word of four letters or more


@dataclass(frozen=True)
class Ad:
    label: str
    title: str
    text: str
    condition: str
    colour: str
    price: int
    brand: str
    material: str | None
    ambiguous: bool  # names no product and no detail of one
    mentions: str | None  # the other category it names, if any


@dataclass(frozen=True)
class AdTextSummary:
    path: Path
    count: int
    categories: dict[str, int]
    ambiguous: int


def _sentence(text: str) -> str:
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!" else text + "."


def _typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(len(word) - 1)
    kind = rng.randrange(3)
    if kind == 0:  # two letters swapped
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:  # a letter dropped
        return word[:i] + word[i + 1 :]
    return word[: i + 1] + word[i] + word[i + 1 :]  # a letter doubled


def _noisy(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    return " ".join(
        _typo(w, rng) if len(w) >= 4 and w.isalpha() and rng.random() < TYPO_RATE else w
        for w in words
    )


def sample_ad(rng: random.Random, label: str, others: Sequence[str] = ()) -> Ad:
    """One ad of category `label`; `others` are the categories it may mention in passing."""
    words = WORDS[label]
    noun, colour, brand = rng.choice(words.nouns), rng.choice(COLOURS), rng.choice(words.brands)
    material = rng.choice(words.materials) if words.materials else None
    condition = rng.choice(tuple(CONDITIONS))
    low, high = words.price
    price = rng.randrange(low, high + 1, words.price_step)
    vague = rng.random() < VAGUE_RATE
    thing = f"{material} {noun}" if material and rng.random() < 0.3 else noun

    if vague or rng.random() < GENERIC_TITLE_RATE:
        title = rng.choice(GENERIC_TITLES)
    else:
        title = rng.choice((
            f"{colour} {noun}", f"{brand} {thing}", f"{noun} for sale", f"{condition} {thing}",
            f"selling my {noun}", f"{colour} {thing}, {price} euros", f"{brand} {noun} ({colour})",
        ))  # fmt: skip
    if vague:
        opener = rng.choice((f"selling this, {colour}", f"{colour}, from {brand}", "see photos"))
        middle = []
    else:
        opener = rng.choice((
            f"selling my {colour} {thing}", f"{brand} {noun} in {colour}",
            f"up for sale: {colour} {thing} by {brand}", f"{colour} {thing} from {brand}",
            f"lovely {thing}, {colour}", f"selling this, {colour}, from {brand}",
        ))  # fmt: skip
        picked = rng.sample(words.details, rng.randint(1, 3))
        n = rng.randint(*words.numbers)
        middle = [_sentence(", ".join(d.format(n=n) for d in picked))]
    middle.append(rng.choice(CONDITIONS[condition]))
    mentions = None
    if others and not vague and rng.random() < MENTION_RATE:
        mentions = rng.choice(others)
        other = rng.choice(WORDS[mentions].nouns)
        middle.append(rng.choice((
            f"Also selling {other}, ask me.", f"Free {other} with it.",
            f"My {other} is for sale too.", f"Goes well with my {other}, also for sale.",
        )))  # fmt: skip
    middle.append(rng.choice((
        f"{price} euros.", f"Asking {price}.", f"€{price} or best offer.", f"{price} EUR, no less.",
    )))  # fmt: skip
    middle += rng.sample(LOGISTICS, rng.randint(0, 2))
    rng.shuffle(middle)
    text = " ".join([_sentence(opener), *middle])
    return Ad(
        label=label,
        title=_noisy(title[0].upper() + title[1:], rng),
        text=_noisy(text, rng),
        condition=condition,
        colour=colour,
        price=price,
        brand=brand,
        material=material,
        ambiguous=vague,
        mentions=mentions,
    )


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise Conflict(
            f"{out} already exists and is not empty; pick another folder or remove it first"
        )


def generate(
    out: Path, *, count: int, seed: int, categories: Sequence[str] | None = None
) -> AdTextSummary:
    """Write `count` ads as `out/metadata.jsonl`, all or nothing.

    Categories are balanced (counts differ by at most one) in a seeded random order; each row has
    a stable `id` (`ad-00042`). Same arguments, same bytes.
    """
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise InvalidInput(f"count must be a whole number from 1 to {MAX_COUNT}")
    cats = check_categories(DEFAULT_CATEGORIES if categories is None else categories)
    out = Path(out)
    _check_out(out)

    rng = random.Random(seed)
    order = [cats[i % len(cats)] for i in range(count)]
    rng.shuffle(order)
    # One seed per ad, drawn up front, so each ad's randomness is independent of the others.
    ad_seeds = [rng.getrandbits(64) for _ in range(count)]
    lines, ambiguous = [], 0
    for i, (label, ad_seed) in enumerate(zip(order, ad_seeds, strict=True)):
        ad = sample_ad(random.Random(ad_seed), label, [c for c in cats if c != label])
        ambiguous += ad.ambiguous
        lines.append(json.dumps({"id": f"ad-{i:05d}", **asdict(ad)}) + "\n")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        with open(tmp / METADATA, "w", encoding="utf-8", newline="\n") as fh:
            fh.writelines(lines)
        _check_out(out)  # again: someone may have filled `out` meanwhile
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return AdTextSummary(out, count, {c: order.count(c) for c in cats}, ambiguous)
