"""Hostile images and hostile requests against the real server: every one is either described
(200) or refused with a 4xx and a JSON error saying what is wrong; never a 5xx, never a traceback.
Each image goes through the three predict forms (raw body, multipart, base64 JSON) and OIP v2."""

from __future__ import annotations

import base64
import io
import json
import shutil
import sqlite3
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image
from serving_harness import running_server, wait_ready

from appliance.datasets.synthetic import generate
from appliance.runs.launcher import start_run
from appliance.services import Services
from appliance.serving.options import DeployOptions
from appliance.serving.service import Serving
from appliance.tasks.images import decode_image

COLOUR = Path(__file__).parents[1] / "recipes" / "colour"
PREDICT = "/v1/endpoints/captions/predict"
INFER = "/v2/models/captions/infer"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with colour@1 trained and deployed at endpoint `captions`."""
    home = tmp_path_factory.mktemp("hostile-home")
    with Services.open(home=home) as services:
        services.workspaces.create("ads")
        photos = generate(home.parent / "hostile-photos", count=40, seed=5).path
        services.datasets.add("ads", "photos", photos)
        services.recipes.add("ads", COLOUR)
        run = start_run(services, "ads", "colour", "photos", {"rank": "0"}).wait()
        assert run["status"] == "succeeded", run["error"]
        Serving(services).deploy("ads", "captions", "colour@1", DeployOptions(max_batch_size=8))
    return home


@pytest.fixture(scope="module")
def client(home: Path) -> Iterator[httpx.Client]:
    with Services.open(home=home) as services, running_server(services) as client:
        wait_ready(client)
        yield client


# --- the corpus ------------------------------------------------------------------------------


def _save(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **params)
    return out.getvalue()


def _photo(mode: str = "RGB", size: tuple[int, int] = (64, 48)) -> Image.Image:
    image = Image.new("RGB", size, (200, 30, 30))
    for x in range(0, size[0], 8):
        for y in range(size[1]):
            image.putpixel((x, y), (20, 20, 220))
    return image.convert(mode) if mode != "RGB" else image


def _png() -> bytes:
    return _save(_photo(), "PNG")


def _jpeg() -> bytes:
    return _save(_photo(), "JPEG", quality=90)


def _header_bomb() -> bytes:
    """A PNG whose header claims 100000×100000 pixels, with one tiny IDAT: 10 Gpx from ~60 B."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _real_bomb() -> bytes:
    return _save(Image.new("L", (20000, 20000)), "PNG")  # a few hundred KB, 400 Mpx decoded


def _i16() -> bytes:
    image = Image.new("I;16", (64, 48))
    image.putdata([(x * 1000) % 65536 for x in range(64 * 48)])
    return _save(image, "PNG")


def _palette_transparent() -> bytes:
    image = _photo().convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    return _save(image, "PNG", transparency=0)


def _animated_gif() -> bytes:
    frames = [_photo(), Image.new("RGB", (64, 48), (0, 200, 0))]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    return _save(_photo(size=(64, 32)), "JPEG", exif=exif)


SVG = (
    b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><text>&x;</text></svg>'
)


@dataclass(frozen=True)
class Case:
    name: str
    data: Callable[[], bytes]
    content_type: str
    status: int  # 200, or the 4xx it must be refused with
    says: str = ""  # what the error must mention


CORPUS = [
    Case("png", _png, "image/png", 200),
    Case("jpeg", _jpeg, "image/jpeg", 200),
    Case("truncated-png", lambda: _png()[: len(_png()) // 2], "image/png", 422, "truncated"),
    Case("truncated-jpeg", lambda: _jpeg()[: len(_jpeg()) // 2], "image/jpeg", 422, "truncated"),
    Case("zero-bytes", lambda: b"", "image/png", 415, "empty"),
    Case("header-bomb", _header_bomb, "image/png", 413, "pixel limit"),
    Case("real-bomb", _real_bomb, "image/png", 413, "pixel limit"),
    Case("cmyk-jpeg", lambda: _save(_photo("CMYK"), "JPEG"), "image/jpeg", 200),
    Case("i16-png", _i16, "image/png", 200),
    Case("palette-transparent-png", _palette_transparent, "image/png", 200),
    Case("animated-gif", _animated_gif, "image/gif", 200),
    Case("exif-rotated-jpeg", _exif_rotated, "image/jpeg", 200),
    Case("png-as-jpeg", _png, "image/jpeg", 200),
    Case("jpeg-as-octet-stream", _jpeg, "application/octet-stream", 200),
    Case(
        "text-as-png", lambda: b"hello, I am not a picture\n" * 4, "image/png", 415, "not an image"
    ),
    Case("svg", lambda: SVG, "image/svg+xml", 415, "not an image"),
    Case("tiff", lambda: _save(_photo(), "TIFF", compression="tiff_lzw"), "image/tiff", 200),
    Case("webp", lambda: _save(_photo(), "WEBP"), "image/webp", 200),
    Case("bmp", lambda: _save(_photo(), "BMP"), "image/bmp", 200),
    Case("la-png", lambda: _save(_photo("LA"), "PNG"), "image/png", 200),
    Case("one-bit-png", lambda: _save(_photo("1"), "PNG"), "image/png", 200),
    Case("zip-as-png", lambda: b"PK\x03\x04" + b"\0" * 100, "image/png", 415, "not an image"),
]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _check(answer: httpx.Response, case: Case, form: str) -> None:
    where = f"{case.name} via {form}: {answer.status_code} {answer.text[:300]}"
    assert answer.status_code < 500, where
    assert "Traceback" not in answer.text and 'File "' not in answer.text, where
    if case.status == 200:
        assert answer.status_code == 200, where
        body = answer.json()
        if "outputs" in body:
            assert body["outputs"][0]["data"][0], where
        else:
            assert body["description"] and 0 < body["confidence"] <= 1, where
        return
    assert answer.status_code == case.status, where
    error = answer.json()["error"]
    assert isinstance(error, str) and case.says in error, where


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_each_hostile_image_in_every_form(client: httpx.Client, case: Case) -> None:
    data = case.data()
    forms = {
        "raw": lambda: client.post(PREDICT, content=data, headers={"content-type": case.content_type}),
        "multipart": lambda: client.post(PREDICT, files={"image": (f"x.{case.name}", data, case.content_type)}),
        "base64-json": lambda: client.post(PREDICT, json={"image": _b64(data)}),
        "data-url-json": lambda: client.post(PREDICT, json={"image": f"data:{case.content_type};base64,{_b64(data)}"}),
        "oip-json": lambda: client.post(INFER, json={"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [_b64(data)]}]}),
        "oip-binary": lambda: _binary_infer(client, [data]),
    }  # fmt: skip
    for form, send in forms.items():
        _check(send(), case, form)


def _binary_infer(client: httpx.Client, images: list[bytes], **tensor: object) -> httpx.Response:
    raw = b"".join(struct.pack("<I", len(i)) + i for i in images)
    spec = {"name": "image", "datatype": "BYTES", "shape": [len(images)],
            "parameters": {"binary_data_size": len(raw)}, **tensor}  # fmt: skip
    header = json.dumps({"inputs": [spec]}).encode()
    return client.post(
        INFER,
        content=header + raw,
        headers={"Inference-Header-Content-Length": str(len(header)),
                 "content-type": "application/octet-stream"},
    )  # fmt: skip


def test_a_bad_image_in_a_batch_is_named_by_its_index(client: httpx.Client) -> None:
    instances = [{"image": _b64(_png())}, {"image": _b64(b"garbage")}]
    answer = client.post(PREDICT, json={"instances": instances})
    assert answer.status_code == 415 and answer.json()["error"].startswith("image 1:")


def test_exif_orientation_is_applied_before_the_model_sees_it() -> None:
    image = decode_image(_exif_rotated(), 40_000_000)
    assert image.size == (32, 64) and image.mode == "RGB"  # stored 64×32, displayed rotated
    for case in CORPUS:
        if case.status == 200:
            assert decode_image(case.data(), 40_000_000).mode == "RGB", case.name


@pytest.mark.parametrize(
    ("kwargs", "status", "says"),
    [
        ({"json": [1, 2]}, 400, "must be an object"),
        ({"json": "an image"}, 400, "must be an object"),
        ({"content": b"null", "headers": {"content-type": "application/json"}}, 400, "must be an object"),
        ({"json": 42}, 400, "must be an object"),
        ({"json": {"instances": {"image": "aGk="}}}, 400, "must be a list"),
        ({"json": {"instances": "aGk="}}, 400, "must be a list"),
        ({"json": {"instances": [1]}}, 400, "needs an 'image' field"),
        ({"json": {"instances": [{"image": 7}]}}, 400, "needs an 'image' field"),
        ({"json": {"instances": []}}, 400, "no image"),
        ({"json": {"image": ["aGk="]}}, 400, "needs an 'image' field"),
        ({"json": {"image": "data:image/png;base64,!!!"}}, 400, "not valid base64"),
        ({"json": {"image": _b64(_png()), "keywords": ["a"]}}, 400, "'keywords' must be a string"),
        ({"json": {"image": _b64(_png()), "keywords": "k" * 500}}, 400, "200 characters"),
        ({"content": b"\xff\xfe{}", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
        ({"content": b'{"image": "' + b"A" * 10 + b'"', "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
        ({"content": b"[" * 100_000 + b"]" * 100_000, "headers": {"content-type": "application/json"}}, 400, ""),
        ({"content": b"x", "headers": {"content-type": "text/html"}}, 415, "not accepted"),
        ({"content": b"x", "headers": {"content-type": "application/x-www-form-urlencoded"}}, 415, "not accepted"),
        ({"content": b"x"}, 415, "not accepted"),
        ({"files": {"picture": ("a.png", _png(), "image/png")}}, 400, "no image"),
        ({"data": {"image": "not a file"}, "files": {"other": ("a", b"x", "text/plain")}}, 400, "no image"),
        ({"content": b"--x\r\nbroken", "headers": {"content-type": "multipart/form-data; boundary=x"}}, 400, ""),
        ({"content": _png(), "headers": {"content-type": "image/png"}, "params": {"keywords": "k" * 500}}, 400, "200 characters"),
    ],
)  # fmt: skip
def test_hostile_request_shapes_get_a_clear_4xx(
    client: httpx.Client, kwargs: dict, status: int, says: str
) -> None:
    answer = client.post(PREDICT, **kwargs)
    assert answer.status_code == status, answer.text[:300]
    assert says in answer.json()["error"] and "Traceback" not in answer.text


def test_batches_of_65_are_refused_in_every_form(client: httpx.Client) -> None:
    image = _png()
    answers = [
        client.post(PREDICT, json={"instances": [{"image": _b64(image)}] * 65}),
        client.post(PREDICT, files=[("image", (f"{i}.png", image, "image/png")) for i in range(65)]),
        client.post(INFER, json={"inputs": [{"name": "image", "datatype": "BYTES", "shape": [65], "data": [_b64(image)] * 65}]}),
        _binary_infer(client, [image] * 65),
    ]  # fmt: skip
    for answer in answers:
        assert answer.status_code == 400 and "64" in answer.json()["error"], answer.text[:300]
    batch = client.post(PREDICT, json={"instances": [{"image": _b64(image)}] * 64})
    assert batch.status_code == 200 and len(batch.json()["predictions"]) == 64


def test_a_form_of_5000_parts_is_413_with_what_to_send(client: httpx.Client) -> None:
    # Litestar's own answer was 400 "Request Entity Too Large".
    parts = [("image", ("a.png", _png(), "image/png")), *[("keywords", (None, "x"))] * 5000]
    answer = client.post(PREDICT, files=parts)
    assert answer.status_code == 413, answer.text[:300]
    assert answer.json()["error"] == (
        "the form has more than 256 parts: send at most 64 inputs in one request"
    )


@pytest.mark.parametrize(
    ("body", "headers", "says"),
    [
        (b"{", {}, "not valid JSON"),
        (b"[]", {}, "'inputs' list"),
        (b'{"inputs": {"name": "image"}}', {}, "'inputs' list"),
        (b'{"inputs": [1]}', {}, "needs a 'name'"),
        (b'{"inputs": [{"name": "image", "datatype": "FP32", "data": [1]}]}', {}, "BYTES"),
        (b'{"inputs": [{"name": "image", "datatype": "BYTES", "data": "aGk="}]}', {}, "list of strings"),
        (b'{"inputs": [{"name": "image", "datatype": "BYTES", "data": [[1]]}]}', {}, "list of strings"),
        (b'{"inputs": [{"name": "image", "datatype": "BYTES", "data": ["***"]}]}', {}, "not valid base64"),
        (b'{"inputs": [{"name": "keywords", "datatype": "BYTES", "data": ["red"]}]}', {}, "named 'image'"),
        (b'{"inputs": [{"name": "image", "datatype": "BYTES", "data": []}]}', {}, "named 'image'"),
        (b'{"inputs": [{"name": "image", "datatype": "BYTES", "parameters": "x"}]}', {}, "parameters"),
        (b'{"inputs": [{"name": "image", "datatype": "BYTES", "parameters": {"binary_data_size": "9"}}]}', {"Inference-Header-Content-Length": "JSON"}, "binary_data_size"),
        (b'{"inputs": [{"name": "image", "datatype": "BYTES", "parameters": {"binary_data_size": -4}}]}xxxx', {"Inference-Header-Content-Length": "JSON"}, "binary_data_size"),
        (b'{"inputs": []}\x05\x00\x00\x00ab', {"Inference-Header-Content-Length": "14"}, "named 'image'"),
        (b'{"inputs": []}', {"Inference-Header-Content-Length": "ten"}, "not valid JSON"),
        (b'{"inputs": []}', {"Inference-Header-Content-Length": "-3"}, "not valid JSON"),
    ],
)  # fmt: skip
def test_hostile_infer_requests_get_a_clear_4xx(
    client: httpx.Client, body: bytes, headers: dict[str, str], says: str
) -> None:
    if headers.get("Inference-Header-Content-Length") == "JSON":  # the length of the JSON part
        headers = {"Inference-Header-Content-Length": str(body.rindex(b"}") + 1)}
    answer = client.post(
        INFER, content=body, headers={"content-type": "application/json", **headers}
    )
    assert 400 <= answer.status_code < 500, answer.text[:300]
    assert says in answer.json()["error"] and "Traceback" not in answer.text, answer.text[:300]


def test_binary_infer_with_a_truncated_element_or_bad_keywords(client: httpx.Client) -> None:
    image = _png()
    raw = struct.pack("<I", len(image) + 50) + image
    header = json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                     "parameters": {"binary_data_size": len(raw)}}]}).encode()  # fmt: skip
    answer = client.post(
        INFER, content=header + raw,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )  # fmt: skip
    assert answer.status_code == 400 and "truncated" in answer.json()["error"]
    words = struct.pack("<I", 2) + b"\xff\xfe"
    raw = struct.pack("<I", len(image)) + image
    header = json.dumps({"inputs": [
        {"name": "image", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": len(raw)}},
        {"name": "keywords", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": len(words)}},
    ]}).encode()  # fmt: skip
    answer = client.post(
        INFER, content=header + raw + words,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )  # fmt: skip
    assert answer.status_code == 400 and "UTF-8" in answer.json()["error"], answer.text[:300]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/endpoints/nope/predict",
        "/v1/endpoints/..%2F..%2Fetc/predict",
        "/v1/endpoints/%2E%2E/predict",
        "/v1/endpoints/..%5C..%5Cwindows/predict",
        "/v1/endpoints/captions%00/predict",
        "/v1/endpoints/%2Fetc%2Fpasswd/predict",
        "/v2/models/nope/infer",
        "/v2/models/..%2F..%2Fetc/infer",
        "/v2/models/captions/versions/..%2F1/infer",
        "/v1/nothing-here",
    ],
)
def test_unknown_and_dotted_endpoints_are_4xx(client: httpx.Client, path: str) -> None:
    answer = client.post(path, json={"image": _b64(_png())})
    assert answer.status_code in (400, 404, 405), (path, answer.status_code, answer.text[:300])
    assert "error" in answer.json() and "Traceback" not in answer.text


def test_unknown_endpoint_names_do_not_grow_the_metrics(client: httpx.Client) -> None:
    for i in range(5):
        client.post(f"/v1/endpoints/probe-{i}/predict", json={"image": _b64(_png())})
    metrics = client.get("/metrics").text
    assert "probe-" not in metrics


def _copy_home(home: Path, to: Path) -> Path:
    """A copy of `home` (which the module's server is serving: one server per home), its
    registry taken with SQLite's online backup."""
    shutil.copytree(home, to, ignore=shutil.ignore_patterns("registry.db*", "server.*"))
    with (
        sqlite3.connect(home / "registry.db") as source,
        sqlite3.connect(to / "registry.db") as copy,
    ):
        source.backup(copy)
    return to


def test_bodies_over_max_body_bytes_get_413(home: Path, tmp_path: Path) -> None:
    big = b"\0" * 300_000
    with (
        Services.open(home=_copy_home(home, tmp_path / "home"), max_body_bytes=200_000) as services,
        running_server(services) as client,
    ):
        wait_ready(client)

        def chunks() -> Iterator[bytes]:
            for _ in range(30):
                yield b"\0" * 10_000

        answers = {
            "raw": client.post(PREDICT, content=big, headers={"content-type": "image/png"}),
            "chunked": client.post(PREDICT, content=chunks(), headers={"content-type": "image/png"}),
            "multipart": client.post(PREDICT, files={"image": ("a.png", big, "image/png")}),
            "json": client.post(PREDICT, json={"image": _b64(big)}),
            "oip": client.post(INFER, json={"inputs": [{"name": "image", "datatype": "BYTES", "data": [_b64(big)]}]}),
        }  # fmt: skip
        for form, answer in answers.items():
            assert answer.status_code == 413, (form, answer.text[:300])
            assert "200,000-byte limit" in answer.json()["error"], form
        assert client.post(PREDICT, json={"image": _b64(_png())}).status_code == 200
