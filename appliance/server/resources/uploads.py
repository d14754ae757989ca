"""Taking files over HTTP: the body (a tar, gzipped or not, or a multipart form whose named
part is the file) is streamed to a folder of its own under the home's `tmp/`, never held in
memory, and bounded by `upload_max_bytes`; a tar is then unpacked there (`archives.extract`).
The folder is removed when the request is done, whatever happened (`gc` takes what a crash
leaves behind)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import anyio
from litestar import Request
from multipart import (
    MultipartSegment,
    ParserError,
    ParserLimitReached,
    PushMultipartParser,
)

from appliance.errors import ApplianceError, InvalidInput, TooLarge, UnsupportedMedia
from appliance.registry import new_id
from appliance.server.resources.archives import extract
from appliance.settings import Settings

AnyRequest = Request[Any, Any, Any]

TAR_TYPES = ("application/x-tar", "application/gzip")
FORM = "multipart/form-data"
MAX_FIELD_BYTES = 64 * 1024
"""A text part of a form (a run id, a task, metrics as JSON)."""
MAX_PARTS = 16
_FLUSH = 1 << 20


@dataclass
class Received:
    """What a request brought: the file (`path`, its name as sent) and the form's text parts."""

    path: Path
    filename: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    work: Path = field(default=Path(), repr=False)


@asynccontextmanager
async def received(
    request: AnyRequest, settings: Settings, part: str, texts: tuple[str, ...] = ()
) -> AsyncIterator[Received]:
    """The body's file, from a tar body (application/x-tar or application/gzip) or from the
    form part `part` (multipart/form-data, with the text parts `texts`), in a scratch folder
    removed on the way out."""
    work = settings.home / "tmp" / f"upload-{new_id()}"
    await anyio.to_thread.run_sync(lambda: work.mkdir(parents=True))
    try:
        limit = settings.upload_max_bytes
        media = request.content_type[0]
        if media == FORM:
            got = await _form(request, work, limit, part, texts)
        elif media in TAR_TYPES and part == "archive":
            got = Received(await _body(request, work / "archive", limit))
        else:
            accepted = " or ".join((*TAR_TYPES, FORM) if part == "archive" else (FORM,))
            raise UnsupportedMedia(
                f"content type '{media or 'none'}' is not accepted: send {accepted}"
            )
        got.work = work
        yield got
    finally:
        await anyio.to_thread.run_sync(lambda: shutil.rmtree(work, ignore_errors=True))


@asynccontextmanager
async def received_folder(
    request: AnyRequest, settings: Settings, texts: tuple[str, ...] = ()
) -> AsyncIterator[Received]:
    """As `received`, with the tar (the body, or the form part `archive`) unpacked: `path` is
    the folder it holds."""
    async with received(request, settings, "archive", texts) as got:
        folder = await anyio.to_thread.run_sync(
            extract, got.path, got.work / "folder", settings.upload_max_bytes
        )
        try:
            yield Received(folder, got.filename, got.fields, got.work)
        except ApplianceError as exc:
            raise _unplaced(exc, folder) from None


def _unplaced(exc: ApplianceError, folder: Path) -> ApplianceError:
    """`exc` saying "the archive" where it names the scratch folder (a path on the server
    that means nothing to the client, and is gone once the request is done)."""
    text = str(exc).replace(f"{folder}/", "").replace(str(folder), "the archive")
    if text == str(exc):
        return exc
    try:
        return type(exc)(text)
    except TypeError:  # an error that takes more than its message
        return exc


def _too_large(limit: int) -> TooLarge:
    return TooLarge(
        f"the upload is larger than the {limit:,}-byte limit (upload_max_bytes): send a smaller "
        "folder, or raise the setting"
    )


async def _body(request: AnyRequest, path: Path, limit: int) -> Path:
    announced = request.headers.get("content-length")
    if announced is not None and announced.isdigit() and int(announced) > limit:
        raise _too_large(limit)  # before a byte is read
    with await anyio.to_thread.run_sync(path.open, "wb") as out:
        sink = _Sink(out, limit)
        async for chunk in request.stream():
            await sink.write(chunk)
        await sink.flush()
    return path


class _Sink:
    """Writes chunks to a file, a megabyte at a time on a worker thread; counts them."""

    def __init__(self, out: BinaryIO, limit: int):
        self.out, self.limit, self.size = out, limit, 0
        self.pending = bytearray()

    async def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise _too_large(self.limit)
        self.pending += chunk
        if len(self.pending) >= _FLUSH:
            await self.flush()

    async def flush(self) -> None:
        if self.pending:
            data, self.pending = bytes(self.pending), bytearray()
            await anyio.to_thread.run_sync(self.out.write, data)


async def _form(
    request: AnyRequest, work: Path, limit: int, part: str, texts: tuple[str, ...]
) -> Received:
    boundary = request.content_type[1].get("boundary", "")
    if not boundary:
        raise InvalidInput("the multipart/form-data body names no boundary")
    announced = request.headers.get("content-length")
    if announced is not None and announced.isdigit() and int(announced) > limit:
        raise _too_large(limit)
    path = work / part
    got = Received(path)
    total = 0
    segment: MultipartSegment | None = None
    text = bytearray()
    out: BinaryIO | None = None
    sink: _Sink | None = None
    try:
        with PushMultipartParser(boundary, max_segment_count=MAX_PARTS) as parser:
            async for chunk in request.stream():
                total += len(chunk)
                if total > limit:
                    raise _too_large(limit)
                for event in parser.parse(chunk):
                    if isinstance(event, MultipartSegment):
                        segment = event
                        if segment.name == part:
                            if out is not None:
                                raise InvalidInput(f"the form has more than one '{part}' part")
                            out = await anyio.to_thread.run_sync(path.open, "wb")
                            sink = _Sink(out, limit)
                            got.filename = PurePosixPath(segment.filename or "").name
                        elif segment.name not in texts:
                            allowed = ", ".join(f"'{n}'" for n in (part, *texts))
                            raise InvalidInput(
                                f"the form has a part '{segment.name}': it takes {allowed}"
                            )
                    elif event:  # a piece of the current part's content
                        if sink is not None and segment is not None and segment.name == part:
                            await sink.write(event)
                        else:
                            text += event
                            if len(text) > MAX_FIELD_BYTES:
                                raise TooLarge(
                                    f"the form part '{segment and segment.name}' "
                                    f"is longer than {MAX_FIELD_BYTES:,} bytes"
                                )
                    elif segment is not None:  # the end of a part
                        if segment.name != part:
                            got.fields[segment.name] = _text(text, segment)
                        text = bytearray()
                        segment = None
                if parser.closed:
                    break
            if not parser.closed:
                raise InvalidInput("the multipart/form-data body ends before its last boundary")
        if sink is not None:
            await sink.flush()
    except ParserLimitReached:
        raise TooLarge(f"the form has more than {MAX_PARTS} parts") from None
    except ParserError as exc:
        raise InvalidInput(f"the multipart/form-data body is malformed ({exc})") from None
    finally:
        if out is not None:
            await anyio.to_thread.run_sync(out.close)
    if out is None:
        raise InvalidInput(f"the form has no '{part}' part: send the file as the part '{part}'")
    return got


def _text(data: bytearray, segment: MultipartSegment) -> str:
    try:
        return data.decode(segment.charset or "utf-8")
    except (UnicodeDecodeError, LookupError):
        raise InvalidInput(f"the form part '{segment.name}' is not UTF-8 text") from None
