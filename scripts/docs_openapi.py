"""Write docs/openapi.json from the Litestar app, so the schema in the repository matches the code.

Usage: python scripts/docs_openapi.py [--check]   (--check exits 1 when the file is stale)

The app is built over a throwaway home with no deployments restored and no scheduler: building
it reads no model and starts nothing. A running server serves the same schema at
/schema/openapi.json (and a browsable page at /schema).
"""

from __future__ import annotations

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
    from generated_page import write_or_check  # beside this script, on sys.path when it runs

    return write_or_check(PAGE, render, "docs_openapi.py", __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
