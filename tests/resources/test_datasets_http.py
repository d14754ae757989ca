"""Dataset versions over real HTTP: a folder sent as a tar (plain, gzipped, or a form's part)
becomes a version exactly as `appliance dataset add` makes one; hostile archives are refused
with a 4xx and leave nothing behind: no version, no stored file, no scratch."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest
from resources.helpers import TAR, leftovers, member, refused, stored_blobs, tar_of, tar_with
from serving_harness import running_server

from appliance.services import Services

BASE = "/v1/workspaces/ads/datasets"


def test_add_list_show_and_diff(services: Services, photos: Path, tmp_path: Path) -> None:
    services.workspaces.create("ads")
    relabelled = shutil.copytree(photos, tmp_path / "relabelled")
    rows = (relabelled / "metadata.jsonl").read_text().splitlines()
    first = json.loads(rows[0]) | {"text": "a relabelled photo"}
    (relabelled / "metadata.jsonl").write_text("\n".join([json.dumps(first), *rows[1:]]) + "\n")
    with running_server(services, restore=False) as client:
        added = client.post(f"{BASE}/photos", content=tar_of(photos), headers=TAR)
        assert added.status_code == 201, added.text
        v1 = added.json()
        assert (v1["version"], v1["row_count"], v1["created"]) == (1, 24, True)
        assert v1["source"] == "upload"
        assert services.datasets.manifest(v1) == services.datasets.manifest(
            services.datasets.add("ads", "check", photos).version
        )  # the same files as the CLI's add of the folder
        # The same content again, gzipped under a top folder: the same version, 200.
        again = client.post(
            f"{BASE}/photos", content=tar_of(photos, "photos/", compress=True),
            headers={"content-type": "application/gzip"},
        )  # fmt: skip
        assert again.status_code == 200 and again.json()["digest"] == v1["digest"]
        assert again.json()["created"] is False
        form = client.post(
            f"{BASE}/photos", files={"archive": ("relabelled.tar", tar_of(relabelled))}
        )
        assert form.status_code == 201, form.text
        assert form.json()["version"] == 2 and form.json()["source"] == "upload relabelled.tar"

        assert [d["name"] for d in client.get(BASE).json()] == ["check", "photos"]
        versions = client.get(f"{BASE}/photos/versions").json()
        assert [v["version"] for v in versions] == [1, 2]
        assert client.get(f"{BASE}/photos@1").json()["digest"] == v1["digest"]
        assert client.get(f"{BASE}/photos").json()["version"] == 2
        assert client.get(f"{BASE}/photos@{v1['digest'][:8]}").json()["version"] == 1
        diff = client.get(f"{BASE}/photos@2/diff", params={"against": "photos@1"}).json()
        assert diff["from"]["version"] == 1 and diff["to"]["version"] == 2
        assert diff["relabelled"] == [first["file_name"]] and diff["added"] == []

        refused(client.get(f"{BASE}/photos@7"), 404, "has no version '7'")
        refused(client.get(f"{BASE}/nope/versions"), 404, "no dataset 'nope'")
        refused(client.get("/v1/workspaces/other/datasets"), 404, "no workspace 'other'")
        refused(client.get(f"{BASE}/photos@1/diff"), 400, "against")


def _hostile() -> list[tuple[str, bytes, str]]:
    good = member("metadata.jsonl")
    return [
        ("absolute", tar_with(good, member("/etc/evil")), "absolute"),
        ("dotdot", tar_with(good, member("a/../../evil")), "'..'"),
        ("symlink", tar_with(good, member("a.png", tarfile.SYMTYPE, "/etc/passwd")), "a link"),
        ("hardlink", tar_with(good, member("a.png", tarfile.LNKTYPE, "metadata.jsonl")), "link"),
        ("device", tar_with(good, member("dev", tarfile.CHRTYPE)), "a device"),
        ("fifo", tar_with(good, member("fifo", tarfile.FIFOTYPE)), "a device"),
        ("twice", tar_with(good, member("./metadata.jsonl")), "twice"),
        ("clash", tar_with(member("a"), member("a/b")), "clashes"),
        ("long name", tar_with(good, member("x" * 300)), "too long"),
        ("not a tar", b"PK\x03\x04 a zip, not a tar" * 40, "not a readable tar"),
        ("empty", tar_with(), "no files"),
    ]


@pytest.mark.parametrize(("case", "body", "words"), _hostile(), ids=[c[0] for c in _hostile()])
def test_hostile_archives_leave_nothing(
    services: Services, tmp_path: Path, case: str, body: bytes, words: str
) -> None:
    services.workspaces.create("ads")
    home = services.settings.home
    with running_server(services, restore=False) as client:
        refused(client.post(f"{BASE}/photos", content=body, headers=TAR), 400, words)
        refused(client.post(f"{BASE}/photos", files={"archive": ("x.tar", body)}), 400, words)
    assert services.datasets.list("ads") == []
    assert leftovers(home) == [] and stored_blobs(home) == []
    assert not (tmp_path / "evil").exists() and not Path("/etc/evil").exists()


def test_a_folder_the_cli_would_refuse_is_refused_alike(services: Services, photos: Path) -> None:
    services.workspaces.create("ads")
    (photos / "metadata.jsonl").write_text('{"file_name": "missing.png", "text": "x"}\n')
    with running_server(services, restore=False) as client:
        answer = client.post(f"{BASE}/photos", content=tar_of(photos), headers=TAR)
    with pytest.raises(Exception) as cli_error:
        services.datasets.add("ads", "photos", photos)
    said = str(cli_error.value).replace(str(photos), "the archive")
    assert answer.status_code == 400 and answer.json()["error"] == said, answer.text
    assert services.datasets.list("ads") == [] and leftovers(services.settings.home) == []


def test_too_large_uploads_are_413(isolated_home: Path, photos: Path) -> None:
    limit = 200_000
    with Services.open(home=isolated_home, upload_max_bytes=limit) as services:
        services.workspaces.create("ads")
        big = tar_with(member("metadata.jsonl"), data=b"x" * (limit + 1))
        bomb = _gzip_bomb(limit * 10)
        assert len(bomb) < limit
        with running_server(services, restore=False) as client:
            refused(client.post(f"{BASE}/photos", content=big, headers=TAR), 413, "upload_max")
            form = client.post(f"{BASE}/photos", files={"archive": ("big.tar", big)})
            refused(form, 413, "upload_max_bytes")
            chunks = client.post(f"{BASE}/photos", content=iter([big]), headers=TAR)  # chunked
            refused(chunks, 413, "upload_max_bytes")
            gzipped = {"content-type": "application/gzip"}
            refused(client.post(f"{BASE}/photos", content=bomb, headers=gzipped), 413, "unpacks")
            refused(
                client.post(f"{BASE}/photos", content=b"{}", headers={"content-type": "text/plain"}),
                415, "not accepted",
            )  # fmt: skip
            refused(
                client.post("/v1/workspaces/nope/datasets/x", content=big, headers=TAR), 404, "nope"
            )
        assert services.datasets.list("ads") == []
        assert leftovers(isolated_home) == [] and stored_blobs(isolated_home) == []


def test_too_many_members_are_413(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    from appliance.server.resources import archives

    monkeypatch.setattr(archives.extract, "__defaults__", (5,))
    services.workspaces.create("ads")
    body = tar_with(*(member(f"{i}.txt") for i in range(6)))
    with running_server(services, restore=False) as client:
        refused(client.post(f"{BASE}/photos", content=body, headers=TAR), 413, "more than 5")
    assert leftovers(services.settings.home) == []


def _gzip_bomb(size: int) -> bytes:
    import gzip

    return gzip.compress(tar_with(member("metadata.jsonl"), data=b"\0" * size), 9)
