"""Write docs/openapi.json from the Litestar app, so the schema in the repository matches the code.

Usage: python scripts/docs_openapi.py [--check]   (--check exits 1 when the file is stale)

The app is built over a throwaway home with no deployments restored and no scheduler: building
it reads no model and starts nothing. A running server serves the same schema at
/schema/openapi.json (and a browsable page at /schema).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

PAGE = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"


def schema() -> dict[str, Any]:
    from appliance.server.app import create_app
    from appliance.services import Services
    from appliance.settings import Settings

    with tempfile.TemporaryDirectory(prefix="appliance-openapi-") as home:
        services = Services(Settings.load(home=Path(home), environ={}))
        try:
            app = create_app(services, restore=False, schedule=False)
            result: dict[str, Any] = app.openapi_schema.to_schema()
        finally:
            services.close()
    return result


def render() -> str:
    return json.dumps(schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="Fail if the file is out of date.")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not PAGE.exists() or PAGE.read_text() != text:
            print(f"{PAGE} is out of date: run python scripts/docs_openapi.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text)
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
