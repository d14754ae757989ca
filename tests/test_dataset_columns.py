"""A dataset version's columns ({column: rows giving it a value}), the schema part of `dataset
diff`, and migration 0012, which counts them for versions recorded before it."""

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from click.testing import CliRunner
from PIL import Image

from appliance.artifacts import ArtifactStore
from appliance.cli import cli
from appliance.datasets.columns import count_columns, schema_change
from appliance.registry.migrations import MIGRATIONS
from appliance.services import Services

COLOURS = [(200, 30, 30), (30, 30, 200), (30, 160, 30), (220, 220, 220)]
TEXTS = [
    "red plain mug on a white background",
    "blue striped hat on a white background",
    "green plain lamp on a black background",
    "white dotted shoe on a grey background",
]


def imagefolder(root: Path, extra: list[dict]) -> Path:
    """Four 16×16 PNGs and their metadata.jsonl rows, each row updated with `extra[i]`."""
    root.mkdir(parents=True)
    rows = []
    for i, (colour, text) in enumerate(zip(COLOURS, TEXTS, strict=True)):
        Image.new("RGB", (16, 16), colour).save(root / f"{i:05d}.png")
        rows.append({"file_name": f"{i:05d}.png", "text": text, **extra[i]})
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


# v1: a colour in two rows (a third has an empty one); v2: no colour, keywords in three rows;
# v3: keywords in all four, the first row's changed.
V1 = [{"color": "red"}, {"color": "blue"}, {"color": ""}, {}]
V2 = [{"keywords": "vintage"}, {"keywords": "brand new"}, {"keywords": "size M"}, {}]
V3 = [{"keywords": "used"}, {"keywords": "brand new"}, {"keywords": "size M"}, {"keywords": "xl"}]


@pytest.fixture
def versions(services: Services, tmp_path: Path) -> list[dict]:
    services.workspaces.create("ads")
    return [
        services.datasets.add("ads", "photos", imagefolder(tmp_path / f"v{i}", extra)).version
        for i, extra in enumerate((V1, V2, V3), start=1)
    ]


def test_a_version_records_its_columns(services: Services, versions: list[dict]) -> None:
    # counted by hand: the empty colour of row 3 is no value; keys sorted
    assert versions[0]["columns"] == {"color": 2, "file_name": 4, "text": 4}
    assert list(versions[0]["columns"]) == ["color", "file_name", "text"]
    assert versions[1]["columns"] == {"file_name": 4, "keywords": 3, "text": 4}
    listed = services.datasets.versions("ads", "photos")
    assert [v["columns"] for v in listed] == [v["columns"] for v in versions]
    assert services.datasets.get("ads", "photos@1")["columns"] == versions[0]["columns"]
    stored = services.registry.query("SELECT columns FROM dataset_versions WHERE version = 3")
    assert json.loads(stored[0]["columns"]) == {"file_name": 4, "keywords": 4, "text": 4}


def test_diff_reports_the_schema_change(services: Services, versions: list[dict]) -> None:
    diff = services.datasets.diff("ads", "photos@1", "photos@2")
    assert diff["schema"] == {"added": {"keywords": 3}, "removed": {"color": 2}, "changed": {}}
    # rows 0-2 gained keywords (0 and 1 lost a colour too); row 3 says nothing either side
    assert diff["rows_changed"] == ["00000.png", "00001.png", "00002.png"]
    assert diff["relabelled"] == [] and diff["changed"] == [] and diff["added"] == []

    later = services.datasets.diff("ads", "photos@2", "photos@3")
    assert later["schema"] == {
        "added": {}, "removed": {}, "changed": {"keywords": {"from": 3, "to": 4}}
    }  # fmt: skip
    # a new keywords value is a changed row, not a relabelled one (its text is the same)
    assert later["rows_changed"] == ["00000.png", "00003.png"]
    assert later["relabelled"] == []
    same = services.datasets.diff("ads", "photos@3", "photos@3")
    assert same["schema"] == {"added": {}, "removed": {}, "changed": {}}
    assert same["rows_changed"] == []


def test_a_text_dataset_records_its_columns(services: Services, tmp_path: Path) -> None:
    services.workspaces.create("ads")
    folder = tmp_path / "ads"
    folder.mkdir()
    rows = [{"id": "a1", "text": "red mug, barely used", "label": "mug"},
            {"id": "a2", "text": "blue hat", "label": "hat", "keywords": "wool"}]  # fmt: skip
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    version = services.datasets.add("ads", "ads", folder).version
    assert version["columns"] == {"id": 2, "keywords": 1, "label": 2, "text": 2}


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_the_cli_prints_columns_and_the_schema_change(versions: list[dict]) -> None:
    out = invoke("dataset", "diff", "ads", "photos@1", "photos@2")
    assert "  schema: +keywords in 3 rows, -color (was in 2 rows)\n" in out
    assert "  rows_changed: 3\n" in out and "  relabelled: 0\n" in out
    out = invoke("dataset", "diff", "ads", "photos@2", "photos@3")
    assert "  schema: keywords: 3 → 4 rows\n" in out
    out = invoke("dataset", "diff", "ads", "photos@3", "photos@3")
    assert "  schema: the same columns\n" in out
    as_json = json.loads(invoke("dataset", "diff", "ads", "photos@1", "photos@2", "--json"))
    assert as_json["schema"]["added"] == {"keywords": 3}

    table = invoke("dataset", "versions", "ads", "photos").splitlines()
    assert table[0].split()[-1] == "COLUMNS"
    assert table[1].endswith("color (2), file_name, text")
    assert table[2].endswith("file_name, keywords (3), text")
    listed = json.loads(invoke("dataset", "versions", "ads", "photos", "--json"))
    assert listed[2]["columns"] == {"file_name": 4, "keywords": 4, "text": 4}

    shown = invoke("dataset", "show", "ads", "photos@2")
    assert "  keywords   3 of 4 rows\n" in shown and "  file_name  4 of 4 rows\n" in shown
    assert shown.startswith(f"version     photos@2 ({versions[1]['digest'][:12]})\n")
    assert json.loads(invoke("dataset", "show", "ads", "photos", "--json"))["version"] == 3


def _record_before_0012(
    db: sqlite_utils.Database, store: ArtifactStore, folder: Path, n: int
) -> str:
    """Store `folder` and record it as version `n` the way `dataset add` did before 0012."""
    names = sorted(p.name for p in folder.iterdir())
    files = [{"path": name, **vars(store.put_file(folder / name))} for name in names]
    manifest = json.dumps({"files": files}, sort_keys=True, separators=(",", ":"))
    digest = store.put_bytes(manifest.encode()).sha256
    db.table("dataset_versions").insert(
        {
            "digest": digest,
            "dataset_id": "d",
            "version": n,
            "file_count": len(files),
            "total_bytes": sum(f["size"] for f in files),
            "row_count": 4,
            "source": str(folder),
            "created_at": f"2026-01-0{n}T00:00:00.000000Z",
        }
    )
    return digest


def test_migration_0012_counts_the_columns_of_existing_versions(
    isolated_home: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    isolated_home.mkdir()
    old = sqlite_utils.Database(isolated_home / "registry.db")
    MIGRATIONS.apply(old, stop_before="0012_dataset_columns")
    assert "columns" not in old.table("dataset_versions").columns_dict
    old.execute("INSERT INTO workspaces (id, name, created_at) VALUES ('w', 'ads', 'now')")
    old.execute("INSERT INTO datasets VALUES ('d', 'w', 'photos', 'now')")
    store = ArtifactStore(isolated_home / "artifacts")
    _record_before_0012(old, store, imagefolder(tmp_path / "v1", V1), 1)
    _record_before_0012(old, store, imagefolder(tmp_path / "v2", V2), 2)
    lost = _record_before_0012(old, store, imagefolder(tmp_path / "v3", V3), 3)
    old.conn.commit()
    old.close()
    store.path(lost).unlink()  # its manifest is gone: the upgrade goes on without it

    with caplog.at_level(logging.WARNING, "appliance.registry"), Services.open() as services:
        listed = services.datasets.versions("ads", "photos")
        assert [v["columns"] for v in listed] == [
            {"color": 2, "file_name": 4, "text": 4},
            {"file_name": 4, "keywords": 3, "text": 4},
            {},
        ]
        diff = services.datasets.diff("ads", "photos@1", "photos@2")
        assert diff["schema"]["added"] == {"keywords": 3}
    assert f"dataset version {lost[:12]}" in caplog.text and "columns stay {}" in caplog.text


def test_count_columns_treats_blank_values_as_none() -> None:
    rows: list[dict[str, Any]] = [{"a": " ", "b": [], "c": {}, "d": None, "e": 0, "f": False}]
    rows.append({"a": "x"})
    assert count_columns(rows) == {"a": 1, "b": 0, "c": 0, "d": 0, "e": 1, "f": 1}


def test_the_tui_diff_panel_names_the_schema_change(
    services: Services, versions: list[dict]
) -> None:
    from tui.screens.datasets import describe_diff

    panel = str(describe_diff(services.datasets.diff("ads", "photos@1", "photos@2")))
    assert "0 relabelled  3 rows changed" in panel
    assert "\nrows changed: 00000.png, 00001.png, 00002.png" in panel
    assert "\nschema: +keywords in 3 rows, -color (was in 2 rows)" in panel


def test_a_column_in_every_row_on_both_sides_has_not_changed() -> None:
    # two rows added: text is still in every row, keywords in one more of them
    change = schema_change({"keywords": 4, "text": 4}, {"keywords": 5, "text": 6}, 4, 6)
    assert change == {"added": {}, "removed": {}, "changed": {"keywords": {"from": 4, "to": 5}}}
