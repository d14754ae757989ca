import json
import shutil
from pathlib import Path

import pytest
from conftest import write_metadata

from appliance.errors import InvalidInput, NotFound
from appliance.services import Services


@pytest.fixture
def ws(services: Services) -> str:
    services.workspaces.create("ads")
    return "ads"


def test_add_same_content_is_same_version(services: Services, ws: str, photos: Path) -> None:
    first = services.datasets.add(ws, "photos", photos)
    assert first.created and first.version["version"] == 1
    copy = photos.parent / "copy"
    shutil.copytree(photos, copy)
    again = services.datasets.add(ws, "photos", copy)
    assert not again.created
    assert again.version["digest"] == first.version["digest"]
    assert len(services.datasets.versions(ws, "photos")) == 1


def test_change_makes_a_new_version_with_a_diff(services: Services, ws: str, photos: Path) -> None:
    v1 = services.datasets.add(ws, "photos", photos).version
    rows = [json.loads(line) for line in (photos / "metadata.jsonl").read_text().splitlines()]
    removed = rows.pop()
    (photos / removed["file_name"]).unlink()
    rows[0]["text"] = "a relabelled description"
    shutil.copyfile(photos / rows[1]["file_name"], photos / rows[2]["file_name"])  # changed
    write_metadata(photos, rows)
    v2 = services.datasets.add(ws, "photos", photos).version
    assert v2["version"] == 2 and v2["parent_digest"] == v1["digest"]
    diff = services.datasets.diff(ws, "photos@1", "photos@latest")
    assert diff["removed"] == [removed["file_name"]]
    assert diff["added"] == []
    assert diff["changed"] == [rows[2]["file_name"]]
    assert diff["relabelled"] == [rows[0]["file_name"]]
    # versions resolve by number, vN, digest prefix and latest
    assert services.datasets.get(ws, "photos@v1")["digest"] == v1["digest"]
    assert services.datasets.get(ws, f"photos@{v2['digest'][:8]}")["version"] == 2
    with pytest.raises(NotFound, match="no version '7'"):
        services.datasets.get(ws, "photos@7")


def test_materialize_rebuilds_the_files(services: Services, ws: str, photos: Path) -> None:
    version = services.datasets.add(ws, "photos", photos).version
    folder = services.datasets.materialize(version)
    for original in photos.iterdir():
        assert (folder / original.name).read_bytes() == original.read_bytes()
    assert services.datasets.materialize(version) == folder


def _broken(photos: Path, case: str) -> str:
    rows = [json.loads(line) for line in (photos / "metadata.jsonl").read_text().splitlines()]
    if case == "missing metadata":
        (photos / "metadata.jsonl").unlink()
        return "has no metadata.jsonl"
    if case == "bad json":
        lines = [json.dumps(r) for r in rows]
        lines[2] = '{"file_name": "00002.png", "text": '
        lines[5] = "[1, 2]"
        write_metadata(photos, lines)
        return r"line 3: not valid JSON(.|\n)*line 6: expected a JSON object"
    if case == "missing file":
        (photos / rows[4]["file_name"]).unlink()
        return f"line 5: '{rows[4]['file_name']}' does not exist"
    if case == "not an image":
        (photos / rows[1]["file_name"]).write_text("this is text, not a PNG")
        return "line 2: .* is not a readable image"
    if case == "truncated image":
        data = (photos / rows[1]["file_name"]).read_bytes()
        (photos / rows[1]["file_name"]).write_bytes(data[: len(data) // 2])
        return "line 2: .* is not a readable image"
    if case == "escaping path":
        rows[0]["file_name"] = "../outside.png"
        rows[1]["file_name"] = "/etc/passwd"
        write_metadata(photos, rows)
        return r"line 1: file_name '\.\./outside.png' must be a relative path(.|\n)*line 2"
    if case == "duplicate":
        rows[3]["file_name"] = rows[2]["file_name"]
        write_metadata(photos, rows)
        return "line 4: .* is listed twice"
    if case == "missing text":
        del rows[0]["text"]
        write_metadata(photos, rows)
        return "line 1: 'text' must be a string"
    raise AssertionError(case)


CASES = [
    "missing metadata", "bad json", "missing file", "not an image", "truncated image",
    "escaping path", "duplicate", "missing text",
]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_bad_imagefolder_is_refused_whole(
    services: Services, ws: str, photos: Path, case: str
) -> None:
    message = _broken(photos, case)
    with pytest.raises(InvalidInput, match=message):
        services.datasets.add(ws, "photos", photos)
    assert services.registry.query("SELECT * FROM dataset_versions") == []
    assert services.registry.query("SELECT * FROM datasets") == []


def test_every_problem_is_reported_at_once(services: Services, ws: str, photos: Path) -> None:
    rows = [json.loads(line) for line in (photos / "metadata.jsonl").read_text().splitlines()]
    (photos / rows[0]["file_name"]).unlink()
    (photos / rows[1]["file_name"]).write_bytes(b"junk")
    lines = [json.dumps(r) for r in rows] + ["not json"]
    write_metadata(photos, lines)
    with pytest.raises(InvalidInput) as caught:
        services.datasets.add(ws, "photos", photos)
    text = str(caught.value)
    assert "(3 problems)" in text and "line 1" in text and "line 2" in text
    assert f"line {len(lines)}" in text


def test_unknown_workspace_and_bad_names(services: Services, photos: Path) -> None:
    with pytest.raises(NotFound, match="no workspace 'nope'"):
        services.datasets.add("nope", "photos", photos)
    services.workspaces.create("ads")
    with pytest.raises(InvalidInput, match="must not contain"):
        services.datasets.add("ads", "../escape", photos)


def test_a_text_dataset_versions_splits_and_diffs_by_row(
    services: Services, ws: str, tmp_path: Path
) -> None:
    from appliance.datasets.ad_text import generate
    from appliance.recipes.split import split_rows

    folder = generate(tmp_path / "ads", count=60, seed=3).path
    first = services.datasets.add(ws, "ads", folder)
    assert first.created and first.version["file_count"] == 1 and first.version["row_count"] == 60
    rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
    train, held_out = split_rows(rows)
    assert held_out and train and split_rows(rows) == (train, held_out)
    rows[0]["label"] = "lamp" if rows[0]["label"] != "lamp" else "mug"
    rows.append({"id": "ad-new", "text": "A brand new bike, barely ridden.", "label": "bike"})
    write_metadata(folder, rows)
    second = services.datasets.add(ws, "ads", folder)
    diff = services.datasets.diff(ws, "ads@1", "ads@2")
    assert diff["added"] == ["ad-new"] and diff["removed"] == [] and diff["changed"] == []
    assert diff["relabelled"] == [rows[0]["id"]] and second.version["version"] == 2
    assert services.datasets.materialize(second.version).joinpath("metadata.jsonl").is_file()


def test_a_bad_text_dataset_is_refused_whole(services: Services, ws: str, tmp_path: Path) -> None:
    folder = tmp_path / "texts"
    folder.mkdir()
    write_metadata(
        folder,
        [{"text": "fine", "label": "mug"}, {"text": "", "label": "mug"}, {"text": "x", "label": 3},
         {"id": "a", "text": "y"}, {"id": "a", "text": "z"}, "[1, 2]"],
    )  # fmt: skip
    with pytest.raises(InvalidInput) as refused:
        services.datasets.add(ws, "texts", folder)
    message = str(refused.value)
    assert "not a valid text dataset (4 problems)" in message
    assert "line 2: 'text' must be a non-empty string" in message
    assert "line 3: 'label' must be a string" in message
    assert (
        "line 5: id 'a' is listed twice" in message and "line 6: expected a JSON object" in message
    )
    assert services.datasets.list(ws) == []


def test_a_text_dataset_that_is_not_utf8_further_down_is_refused(
    services: Services, ws: str, tmp_path: Path
) -> None:
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "metadata.jsonl").write_bytes(b'{"text": "fine"}\n{"text": "\xff\xfe"}\n')
    with pytest.raises(InvalidInput, match="is not UTF-8 text"):
        services.datasets.add(ws, "texts", folder)
