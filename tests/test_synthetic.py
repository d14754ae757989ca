"""The synthetic product-photo generator: determinism, imagefolder layout, coverage, errors."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from appliance.datasets.synthetic import (
    BACKGROUNDS,
    CATEGORIES,
    COLORS,
    DEFAULT_CATEGORIES,
    PATTERNS,
    ProductAttributes,
    darken,
    generate,
    render,
    sample_attributes,
)
from appliance.errors import Conflict, InvalidInput


def _rows(folder: Path) -> list[dict[str, str]]:
    lines = (folder / "metadata.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _brightness(path: Path) -> float:
    return float(np.asarray(Image.open(path).convert("L"), dtype=np.float64).mean())


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        generate(
            tmp_path / name, count=40, seed=seed, low_light_fraction=0.25, categories=CATEGORIES
        )
    a, b, c = (_files(tmp_path / name) for name in "abc")
    assert len(a) == 41
    assert a == b
    assert a.keys() == c.keys()
    assert a["metadata.jsonl"] != c["metadata.jsonl"]
    assert sum(a[name] != c[name] for name in a) > 30


def test_metadata_rows_are_well_formed_and_name_real_pngs(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    summary = generate(out, count=30, seed=1, low_light_fraction=0.5, size=48)
    assert summary.path == out
    assert summary.count == 30
    rows = _rows(out)
    assert [r["file_name"] for r in rows] == [f"{i:05d}.png" for i in range(30)]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [r["file_name"] for r in rows] + ["metadata.jsonl"]
    )
    keys = ["file_name", "text", "category", "color", "pattern", "background", "lighting"]
    for row in rows:
        assert list(row) == keys
        assert row["category"] in DEFAULT_CATEGORIES
        assert row["color"] in COLORS
        assert row["pattern"] in PATTERNS
        assert row["background"] in BACKGROUNDS
        assert row["lighting"] in ("normal", "low")
        with Image.open(out / row["file_name"]) as image:
            assert image.format == "PNG"
            assert image.mode == "RGB"
            assert image.size == (48, 48)
    assert summary.categories == dict(Counter(r["category"] for r in rows))
    assert not list(tmp_path.glob(".ds.tmp-*")), "the temporary folder must not be left behind"


def test_descriptions_spell_out_the_attributes_in_a_fixed_order(tmp_path: Path) -> None:
    attrs = ProductAttributes("mug", "red", "striped", "white", "low")
    assert attrs.description() == "red striped mug on a white background"
    plain = ProductAttributes("hat", "blue", "plain", "black")
    assert plain.description() == "blue plain hat on a black background"

    generate(tmp_path / "ds", count=50, seed=3, low_light_fraction=0.5)
    for row in _rows(tmp_path / "ds"):
        words = row["text"].split()
        assert words == [
            row["color"],
            row["pattern"],
            row["category"],
            "on",
            "a",
            row["background"],
            "background",
        ]


def test_low_light_count_is_exact_and_those_photos_are_darker(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    summary = generate(out, count=60, seed=4, low_light_fraction=0.3)
    rows = _rows(out)
    low = [r for r in rows if r["lighting"] == "low"]
    assert summary.low_light == len(low) == 18
    normal_mean = np.mean([_brightness(out / r["file_name"]) for r in rows if r not in low])
    low_mean = np.mean([_brightness(out / r["file_name"]) for r in low])
    assert low_mean < 0.5 * normal_mean

    none = generate(tmp_path / "none", count=10, seed=4)
    assert none.low_light == 0
    assert {r["lighting"] for r in _rows(tmp_path / "none")} == {"normal"}
    every = generate(tmp_path / "every", count=10, seed=4, low_light_fraction=1.0)
    assert every.low_light == 10


def test_the_same_photo_in_low_light_is_darker_on_every_background() -> None:
    for background in BACKGROUNDS:
        attrs = ProductAttributes("book", "yellow", "dotted", background)
        normal = render(attrs, rng=random.Random(9))
        low = render(replace(attrs, lighting="low"), rng=random.Random(9))
        low_mean, normal_mean = (np.asarray(i, dtype=np.float64).mean() for i in (low, normal))
        assert low_mean < 0.45 * normal_mean + 12, background


def test_darken_is_a_pure_function_of_image_and_rng() -> None:
    image = render(ProductAttributes("lamp", "green", "striped", "white"), rng=random.Random(2))
    before = image.tobytes()
    first = darken(image, random.Random(5))
    assert darken(image, random.Random(5)).tobytes() == first.tobytes()
    assert darken(image, random.Random(6)).tobytes() != first.tobytes()
    assert image.tobytes() == before
    assert first.size == image.size and first.mode == "RGB"
    assert np.asarray(first, dtype=np.float64).mean() < 0.4 * np.asarray(image).mean()


def test_car_is_absent_by_default_and_present_when_asked_for(tmp_path: Path) -> None:
    assert "car" in CATEGORIES
    assert "car" not in DEFAULT_CATEGORIES
    default = generate(tmp_path / "default", count=90, seed=5)
    assert "car" not in {r["category"] for r in _rows(tmp_path / "default")}
    assert "car" not in default.categories

    cars = generate(tmp_path / "cars", count=20, seed=5, categories=["car", "mug"])
    assert cars.categories == {"car": 10, "mug": 10}
    assert Counter(r["category"] for r in _rows(tmp_path / "cars")) == {"car": 10, "mug": 10}

    rng = random.Random(0)
    assert all(sample_attributes(rng).category != "car" for _ in range(200))
    assert sample_attributes(rng, categories=("car",)).category == "car"


def test_every_default_category_is_covered_and_balanced(tmp_path: Path) -> None:
    summary = generate(tmp_path / "ds", count=300, seed=6)
    counts = Counter(r["category"] for r in _rows(tmp_path / "ds"))
    assert set(counts) == set(DEFAULT_CATEGORIES)
    assert max(counts.values()) - min(counts.values()) <= 1
    assert summary.categories == dict(counts)
    # The other attributes are drawn at random: each value turns up in a few hundred photos.
    for key, values in (("color", COLORS), ("pattern", PATTERNS), ("background", BACKGROUNDS)):
        assert {r[key] for r in _rows(tmp_path / "ds")} == set(values)


def test_sample_attributes_covers_every_value() -> None:
    rng = random.Random(1)
    samples = [sample_attributes(rng, low_light_fraction=0.5) for _ in range(400)]
    assert {s.category for s in samples} == set(DEFAULT_CATEGORIES)
    assert {s.color for s in samples} == set(COLORS)
    assert {s.pattern for s in samples} == set(PATTERNS)
    assert {s.background for s in samples} == set(BACKGROUNDS)
    assert 120 < sum(s.lighting == "low" for s in samples) < 280


def test_render_is_deterministic_and_sized() -> None:
    attrs = ProductAttributes("chair", "purple", "dotted", "grey")
    first = render(attrs, size=96, rng=random.Random(3))
    assert first.mode == "RGB" and first.size == (96, 96)
    assert render(attrs, size=96, rng=random.Random(3)).tobytes() == first.tobytes()
    assert render(attrs, size=96, rng=random.Random(4)).tobytes() != first.tobytes()


def test_the_product_colour_stands_out_from_the_background() -> None:
    # The product's colour must dominate the pixels that differ from the backdrop.
    for color in COLORS:
        for background in BACKGROUNDS:
            attrs = ProductAttributes("bag", color, "plain", background)
            pixels = np.asarray(render(attrs, rng=random.Random(1)), dtype=np.float64)
            corner = pixels[:4, :4].reshape(-1, 3).mean(axis=0)
            far = np.linalg.norm(pixels - corner, axis=2) > 60
            assert far.mean() > 0.15, (color, background)


def _longest_run(mask: np.ndarray) -> int:
    best = 0
    for line in [*mask, *mask.T]:
        run = 0
        for on in line:
            run = run + 1 if on else 0
            best = max(best, run)
    return best


@pytest.mark.parametrize(
    ("color", "background", "is_ink"),
    [
        ("blue", "black", lambda px: (px > 180).all(axis=2)),  # light ink on a dark colour
        ("yellow", "white", lambda px: (px < 70).all(axis=2)),  # dark ink on a light colour
    ],
)
def test_patterns_are_bold_and_tell_stripes_from_dots(
    color: str, background: str, is_ink: Callable[[np.ndarray], np.ndarray]
) -> None:
    for seed in range(4):
        ink = {}
        for pattern in PATTERNS:
            attrs = ProductAttributes("bag", color, pattern, background)
            ink[pattern] = is_ink(np.asarray(render(attrs, rng=random.Random(seed)), dtype=int))
        assert ink["plain"].sum() == 0
        assert ink["striped"].mean() > 0.03
        assert ink["dotted"].mean() > 0.01
        # Stripes run across the product; dots (~4-5 px across at 64 px) never do.
        assert _longest_run(ink["striped"]) >= 12
        assert 3 <= _longest_run(ink["dotted"]) <= 7


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"count": 0}, "count"),
        ({"count": 100_001}, "count"),
        ({"count": 5, "low_light_fraction": -0.1}, "low-light"),
        ({"count": 5, "low_light_fraction": 1.5}, "low-light"),
        ({"count": 5, "low_light_fraction": float("nan")}, "low-light"),
        ({"count": 5, "categories": ["mug", "spaceship"]}, "spaceship"),
        ({"count": 5, "categories": []}, "at least one"),
        ({"count": 5, "size": 31}, "size"),
        ({"count": 5, "size": 513}, "size"),
    ],
)
def test_bad_arguments_are_rejected_before_anything_is_written(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    out = tmp_path / "ds"
    with pytest.raises(InvalidInput, match=message) as caught:
        generate(out, seed=0, **kwargs)  # type: ignore[arg-type]
    if kwargs.get("categories"):
        assert "bottle" in str(caught.value), "the message lists the valid categories"
    assert list(tmp_path.iterdir()) == []


def test_non_empty_output_is_a_conflict_and_is_left_alone(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(Conflict, match="another folder or remove it"):
        generate(out, count=3, seed=0)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]

    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(Conflict):
        generate(a_file, count=3, seed=0)
    assert a_file.read_text() == "x"


def test_an_existing_empty_folder_is_replaced(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    out.mkdir()
    generate(out, count=4, seed=0)
    assert len(list(out.iterdir())) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_a_failure_midway_leaves_no_dataset_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from appliance.datasets import synthetic

    calls = 0
    real_render = synthetic.render

    def failing_render(attrs: ProductAttributes, *, size: int, rng: random.Random) -> Image.Image:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("disk on fire")
        return real_render(attrs, size=size, rng=rng)

    monkeypatch.setattr(synthetic, "render", failing_render)
    with pytest.raises(RuntimeError, match="disk on fire"):
        generate(tmp_path / "ds", count=5, seed=0)
    assert list(tmp_path.iterdir()) == []
