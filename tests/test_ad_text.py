"""The synthetic ad-text generator: determinism, columns, categories, noise, errors, and its CLI."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.cli import cli
from appliance.datasets import synthetic
from appliance.datasets.ad_text import CATEGORIES, DEFAULT_CATEGORIES, generate
from appliance.errors import Conflict, InvalidInput

COLUMNS = {
    "id", "label", "title", "text", "condition", "colour", "price", "brand", "material",
    "ambiguous", "mentions",
}  # fmt: skip


def _rows(folder: Path) -> list[dict]:
    lines = (folder / "metadata.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _words(row: dict) -> set[str]:
    return set(re.findall(r"[a-z]+", f"{row['title']} {row['text']}".lower()))


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        generate(tmp_path / name, count=300, seed=seed, categories=CATEGORIES)
    a, b, c = ((tmp_path / n / "metadata.jsonl").read_bytes() for n in "abc")
    assert a == b and a != c
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["metadata.jsonl"]  # no images


def test_rows_have_the_columns_and_balanced_categories(tmp_path: Path) -> None:
    # The photo generator's categories, with `car` (the story's new one) off by default.
    assert CATEGORIES == synthetic.CATEGORIES and DEFAULT_CATEGORIES == synthetic.DEFAULT_CATEGORIES
    summary = generate(tmp_path / "ads", count=803, seed=1)
    rows = _rows(tmp_path / "ads")
    assert len(rows) == summary.count == 803
    assert all(set(row) == COLUMNS for row in rows)
    assert len({row["id"] for row in rows}) == 803 and rows[42]["id"] == "ad-00042"
    counts = Counter(row["label"] for row in rows)
    assert set(counts) == set(DEFAULT_CATEGORIES) and "car" not in counts
    assert max(counts.values()) - min(counts.values()) <= 1 and summary.categories == counts
    assert all(row["title"] and len(row["text"].split()) >= 4 for row in rows)
    assert all(isinstance(row["price"], int) and row["price"] > 0 for row in rows)
    cars = _rows(generate(tmp_path / "cars", count=90, seed=1, categories=CATEGORIES).path)
    assert Counter(row["label"] for row in cars)["car"] == 10
    only = _rows(generate(tmp_path / "two", count=20, seed=1, categories=["car", "mug"]).path)
    assert {row["label"] for row in only} == {"car", "mug"}


def test_no_single_word_gives_the_category_away(tmp_path: Path) -> None:
    rows = _rows(generate(tmp_path / "ads", count=1800, seed=2, categories=CATEGORIES).path)
    containing: dict[str, set[int]] = defaultdict(set)
    for i, row in enumerate(rows):
        for word in _words(row):
            containing[word].add(i)
    by_label: dict[str, set[int]] = defaultdict(set)
    for i, row in enumerate(rows):
        by_label[row["label"]].add(i)
    for label, members in by_label.items():
        for word, hits in containing.items():
            f1 = 2 * len(hits & members) / (len(hits) + len(members))
            assert f1 < 0.9, f"'{word}' alone finds the {label} ads"
    # Colours, conditions and brands are shared across categories.
    for word in ("red", "condition", "pickup", "alpina", "nordhem", "leather", "glass"):
        labels = {rows[i]["label"] for i in containing[word]}
        assert len(labels) >= 2, word


def test_noise_and_ambiguity_come_at_small_rates(tmp_path: Path) -> None:
    summary = generate(tmp_path / "ads", count=2000, seed=3, categories=CATEGORIES)
    rows = _rows(summary.path)
    ambiguous = sum(row["ambiguous"] for row in rows)
    mentions = [row for row in rows if row["mentions"]]
    assert ambiguous == summary.ambiguous and 20 <= ambiguous <= 120
    assert 120 <= len(mentions) <= 360
    assert all(row["mentions"] != row["label"] for row in mentions)
    # Typos: words that appear once in 2000 ads and are not numbers (prices, sizes, km).
    counts = Counter(w for row in rows for w in re.findall(r"[a-z]{4,}", row["text"].lower()))
    assert 20 <= sum(n == 1 for n in counts.values()) <= 400


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="count"):
        generate(tmp_path / "a", count=0, seed=0)
    with pytest.raises(InvalidInput, match="spaceship"):
        generate(tmp_path / "a", count=5, seed=0, categories=["mug", "spaceship"])
    with pytest.raises(InvalidInput, match="at least one"):
        generate(tmp_path / "a", count=5, seed=0, categories=[])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(Conflict, match="not empty"):
        generate(tmp_path / "full", count=5, seed=0)
    assert not (tmp_path / "a").exists()


def test_cli_generates_ad_texts_and_keeps_photos_the_default(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "ads"
    args = ["dataset", "generate", str(out), "--kind", "ad-text", "--count", "45", "--seed", "4"]
    result = runner.invoke(cli, [*args, "--categories", "car,mug,hat", "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["count"] == 45 and summary["categories"] == {"car": 15, "mug": 15, "hat": 15}
    assert (
        out.joinpath("metadata.jsonl").read_bytes()
        == generate(tmp_path / "same", count=45, seed=4, categories=["car", "mug", "hat"])
        .path.joinpath("metadata.jsonl")
        .read_bytes()
    )

    result = runner.invoke(cli, [*args[:2], str(tmp_path / "b"), *args[3:], "--size", "32"])
    assert result.exit_code == 1 and "--size only applies to --kind photos" in result.stderr

    result = runner.invoke(cli, ["dataset", "generate", str(tmp_path / "p"), "--count", "3"])
    assert result.exit_code == 0 and result.stdout.startswith("wrote 3 images")
    assert len(list((tmp_path / "p").glob("*.png"))) == 3
