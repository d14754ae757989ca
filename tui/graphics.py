"""Which way the terminal can show pictures: the Terminal Graphics Protocol (kitty), Sixel, or
half blocks, which every terminal shows. APPLIANCE_TUI_IMAGES names one (default `auto`: ask).

Asking writes escape codes and reads the answer from stdin, which works only before Textual's
input thread takes stdin over; textual-image asks when its package is first imported. So no
module imports it at import time: `run_tui` calls `start`, which asks on a thread while the
app's modules load, then calls what `start` returned, which waits for the answer and imports
textual-image's widgets, all before the first frame."""

from __future__ import annotations

import importlib
import re
import sys
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from textual_image.widget import SixelImage, TGPImage

ENV = "APPLIANCE_TUI_IMAGES"
TGP, SIXEL, HALFBLOCKS = "tgp", "sixel", "halfblocks"
PROTOCOLS = (TGP, SIXEL, HALFBLOCKS)
# What textual_image.renderable imports besides itself: loaded on the caller's thread first, so
# the asking thread never imports a module that the app's import is loading at the same time.
_SHARED_MODULES = ("rich.console", "PIL.Image", "PIL.ImageFilter", "termios", "tty")
KITTY_PLACEHOLDERS = (0, 28)
"""The first kitty that draws TGP's Unicode placeholders, which textual-image places images with;
older ones answer TGP queries yet draw the placeholders as boxes."""


def named(env: str | None) -> str | None:
    """The protocol the environment variable's value names; None for `auto`, unset or a value
    that names none (those mean: ask the terminal)."""
    value = (env or "").strip().lower()
    return value if value in PROTOCOLS else None


def image_protocol(env: str | None, detected: str) -> str:
    """The protocol to draw with: the one `env` names, else the one the terminal answered."""
    return named(env) or detected


def start(environ: Mapping[str, str]) -> Callable[[], str]:
    """Start finding the protocol (asking the terminal on a thread unless the environment says
    half blocks); call the result, after importing the app and before running it, for the
    answer. A protocol whose widgets cannot load becomes half blocks; nothing is printed."""
    wanted = named(environ.get(ENV))
    if wanted == HALFBLOCKS:
        return lambda: HALFBLOCKS
    for module in _SHARED_MODULES:
        importlib.import_module(module)
    answers: list[str] = []
    asking = threading.Thread(
        target=lambda: answers.append(ask_terminal()), name="terminal-graphics", daemon=True
    )
    asking.start()

    def answer() -> str:
        asking.join()
        return _loaded(image_protocol(wanted, answers[0] if answers else HALFBLOCKS))

    return answer


def ask_terminal() -> str:
    """What the terminal says it shows: Sixel before TGP, textual-image's order (kitty has no
    Sixel; Konsole and WezTerm claim TGP but draw its placeholders wrong), TGP only where its
    placeholders are drawn, else half blocks. Only a terminal on both stdin and stdout is asked;
    textual-image asks once per process."""
    if not (_is_terminal(sys.__stdin__) and _is_terminal(sys.__stdout__)):
        return HALFBLOCKS
    try:
        from textual_image import renderable  # asks the terminal, with 0.1 s timeouts
    except Exception:  # the terminal cannot be read after all: no pixels, and no noise
        return HALFBLOCKS
    if renderable.Image is renderable.SixelImage:
        return SIXEL
    if renderable.Image is renderable.TGPImage:
        return TGP if draws_placeholders(_terminal_version()) else HALFBLOCKS
    return HALFBLOCKS


def draws_placeholders(version: str) -> bool:
    """Whether a TGP terminal that names itself `version` (its XTVERSION answer) draws Unicode
    placeholders: any but a kitty older than `KITTY_PLACEHOLDERS`."""
    kitty = re.match(r"kitty\((\d+)\.(\d+)", version)
    return kitty is None or (int(kitty[1]), int(kitty[2])) >= KITTY_PLACEHOLDERS


def _terminal_version() -> str:
    """The terminal's name and version (XTVERSION), or "" when it does not say within 0.1 s."""
    from textual_image._terminal import capture_terminal_response

    start, end, out = "\x1bP>|", "\x1b\\", sys.__stdout__
    if out is None:
        return ""
    try:
        with capture_terminal_response(start, end, timeout=0.1) as response:
            out.write("\x1b[>q")
            out.flush()
    except Exception:  # no answer in time, or not the one asked for
        return ""
    return str(response.sequence)[len(start) : -len(end)]


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (OSError, ValueError):  # closed or detached
        return False


def _loaded(protocol: str) -> str:
    """`protocol`, once the widgets for it are imported (which also measures the terminal's
    cell in pixels while that can still be asked); half blocks if they cannot be."""
    if protocol == HALFBLOCKS:
        return protocol
    try:
        importlib.import_module("textual_image.widget")
    except Exception:
        return HALFBLOCKS
    return protocol


def pixel_widget(protocol: str) -> TGPImage | SixelImage:
    """An empty textual-image widget drawing with `protocol` (TGP or Sixel)."""
    from textual_image.widget import SixelImage, TGPImage

    return SixelImage() if protocol == SIXEL else TGPImage()


def cell_ratio() -> float:
    """A terminal cell's height over its width (2 when the terminal does not say)."""
    from textual_image._terminal import get_cell_size  # the value textual-image draws with

    width, height = get_cell_size()
    return height / width if width and height else 2.0
