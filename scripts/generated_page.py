"""The command line shared by the scripts that generate a docs page from the code: write it, or
with --check fail when the committed page differs from what the code says now."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def write_or_check(page: Path, render: Callable[[], str], script: str, description: str) -> int:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--check", action="store_true", help="Fail if the page is out of date.")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not page.exists() or page.read_text() != text:
            print(f"{page} is out of date: run python scripts/{script}", file=sys.stderr)
            return 1
        return 0
    page.write_text(text)
    print(f"wrote {page}")
    return 0
