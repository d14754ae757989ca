from pathlib import Path

import pytest

from appliance.artifacts import ArtifactStore
from appliance.errors import InvalidInput, NotFound


def test_identical_content_is_stored_once(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    (tmp_path / "a.txt").write_bytes(b"same bytes")
    (tmp_path / "b.txt").write_bytes(b"same bytes")
    first = store.put_file(tmp_path / "a.txt")
    second = store.put_file(tmp_path / "b.txt")
    third = store.put_bytes(b"same bytes")
    assert first == second == third
    assert first.size == 10
    blobs = [p for p in (tmp_path / "artifacts" / "sha256").rglob("*") if p.is_file()]
    assert len(blobs) == 1
    assert store.read_bytes(first.sha256) == b"same bytes"
    assert not any((tmp_path / "artifacts" / "tmp").iterdir())  # no temporary files left


def test_link_into_and_bad_digests(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    blob = store.put_bytes(b"hello")
    store.link_into(blob.sha256, tmp_path / "out" / "hello.txt")
    assert (tmp_path / "out" / "hello.txt").read_bytes() == b"hello"
    with pytest.raises(InvalidInput, match="not a sha256"):
        store.path("../../etc/passwd")
    with pytest.raises(NotFound, match="missing"):
        store.read_bytes("0" * 64)
