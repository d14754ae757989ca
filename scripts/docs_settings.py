"""Write docs/settings.md from the Settings class, so the page cannot drift from the code.

Usage: python scripts/docs_settings.py [--check]   (--check exits 1 when the page is stale)
"""

from __future__ import annotations

import sys
from pathlib import Path

from appliance.settings import Settings

PAGE = Path(__file__).resolve().parents[1] / "docs" / "settings.md"

INTRO = """# Settings

One `Settings` object is built at start from, lowest first: the defaults below, `appliance.toml`
in the home folder, `APPLIANCE_<NAME>` environment variables, and command-line options
(`--home`, and the options of `appliance serve`). `appliance settings` prints each value in force
with its environment variable and what it does. This page is generated from the code by
`python scripts/docs_settings.py`.

Example `appliance.toml`:

```toml
port = 9000
host = "127.0.0.1"
max_body_bytes = 20000000
```

| setting | type | default | environment | what it does |
| --- | --- | --- | --- | --- |
"""


def render() -> str:
    rows = [
        f"| `{r['name']}` | {r['type']} | {r['default']} | `{r['env']}` | {r['help']} |"
        for r in Settings.describe()
    ]
    return INTRO + "\n".join(rows) + "\n"


def main() -> int:
    from generated_page import write_or_check  # beside this script, on sys.path when it runs

    return write_or_check(PAGE, render, "docs_settings.py", __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
