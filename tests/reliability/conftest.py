"""Crash and resource-exhaustion tests. The fixtures of tests/conftest.py (an isolated home per
test) apply here too; this file only makes tests/ (serving_harness) and this folder
(crash_harness) importable, whatever import mode pytest runs in."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for folder in (HERE.parent, HERE):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
