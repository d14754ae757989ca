"""Where recipes come from: the built-in ones in the repository's `models/` folder, and the ones
a user registered in a workspace with `appliance recipe add` (these win on a name clash)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import re
import shutil
import sys
import threading
from pathlib import Path
from types import ModuleType

from appliance.errors import Conflict, InvalidInput, NotFound
from appliance.names import validate_name
from appliance.recipes.spec import RECIPE_FILE, RecipeSpec, read_recipe
from appliance.registry import Registry, Rows, utcnow
from appliance.workspaces import Workspaces

# The built-in recipes: models/ beside the package in a checkout (editable installs), or where a
# wheel install puts them (pyproject's data-files).
BUILTIN_DIRS = (
    Path(__file__).resolve().parents[2] / "models",
    Path(sys.prefix) / "share" / "appliance" / "models",
)
# One recipe import at a time: two threads loading the same recipe must share one module.
_LOADING = threading.RLock()


def builtin_recipes() -> dict[str, RecipeSpec]:
    found: dict[str, RecipeSpec] = {}
    for folder in BUILTIN_DIRS:
        for path in sorted(folder.glob(f"*/{RECIPE_FILE}")) if folder.is_dir() else ():
            spec = read_recipe(path.parent)
            found.setdefault(spec.name, spec)
    return found


class Recipes:
    def __init__(self, registry: Registry, workspaces: Workspaces):
        self._registry = registry
        self._workspaces = workspaces

    def add(self, workspace: str, folder: Path) -> RecipeSpec:
        """Register the recipe in `folder` (by path) in the workspace."""
        ws = self._workspaces.get(workspace)
        spec = read_recipe(folder)
        row = {
            "workspace_id": ws["id"],
            "name": spec.name,
            "path": str(spec.folder),
            "code_hash": spec.code_hash(),
            "created_at": utcnow(),
        }
        self._registry.write(
            lambda db: db.table("recipes").upsert(row, pk=("workspace_id", "name"))
        )
        return spec

    def get(self, workspace: str, name: str) -> RecipeSpec:
        ws = self._workspaces.get(workspace)
        rows = self._registry.query(
            "SELECT path FROM recipes WHERE workspace_id = ? AND name = ?", (ws["id"], name)
        )
        if rows:
            folder = Path(rows[0]["path"])
            if not folder.is_dir():
                raise NotFound(
                    f"recipe '{name}' was registered from {folder}, which no longer exists; "
                    "run `appliance recipe add` again"
                )
            return read_recipe(folder)
        builtin = builtin_recipes()
        if name in builtin:
            return builtin[name]
        known = ", ".join(sorted({*builtin, *(r["name"] for r in self.list(workspace))}))
        raise NotFound(f"no recipe '{name}' (known: {known or 'none'})")

    def list(self, workspace: str) -> Rows:
        ws = self._workspaces.get(workspace)
        rows: Rows = [
            {"name": s.name, "source": "built-in", "path": str(s.folder), "task": s.task}
            for s in builtin_recipes().values()
        ]
        for row in self._registry.query(
            "SELECT name, path FROM recipes WHERE workspace_id = ? ORDER BY name", (ws["id"],)
        ):
            rows = [r for r in rows if r["name"] != row["name"]]
            rows.append({"name": row["name"], "source": "workspace", "path": row["path"]})
        return sorted(rows, key=lambda r: r["name"])


def copy_recipe(spec: RecipeSpec, target: Path, name: str | None = None) -> RecipeSpec:
    """`appliance new`: a copy of a recipe for the user to change, optionally renamed."""
    if target.exists() and any(target.iterdir()):
        raise Conflict(f"{target} is not empty; choose a new folder")
    new_name = validate_name(name or target.name, "recipe name")
    shutil.copytree(
        spec.folder, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
    )
    toml = target / RECIPE_FILE
    lines = toml.read_text().splitlines()
    renamed = [f'name = "{new_name}"' if line.startswith("name =") else line for line in lines]
    toml.write_text("\n".join(renamed) + "\n")
    return read_recipe(target)


def load_module(spec: RecipeSpec) -> ModuleType:
    """Import the recipe's module (recipe.toml's `module`) as a submodule of its package."""
    package = load_package(spec)
    with _LOADING:
        module = importlib.import_module(f"{package.__name__}.{Path(spec.module).stem}")
    for required in ("train", "evaluate"):
        if not callable(getattr(module, required, None)):
            raise InvalidInput(f"{spec.module_path} does not define {required}(ctx)")
    return module


def load_package(spec: RecipeSpec) -> ModuleType:
    """The recipe folder imported as a package of its own, one per folder and code. Siblings
    import each other relatively (`from .captioner_infer import Captioner`), so a copy of a
    recipe (`appliance new`) served in the same process runs its own code, never the
    original's, and a recipe changed on disk imports anew. The same folder and code import
    once. Nothing goes on sys.path: the folder is the package's only search location."""
    key = hashlib.sha256(f"{spec.folder}\0{spec.code_hash()}".encode()).hexdigest()[:12]
    name = f"appliance_recipe_{re.sub(r'[^0-9a-zA-Z_]', '_', spec.name)}_{key}"
    with _LOADING:
        if name in sys.modules:
            return sys.modules[name]
        init = spec.folder / "__init__.py"
        locations = [str(spec.folder)]
        package_spec: importlib.machinery.ModuleSpec | None
        if init.is_file():
            package_spec = importlib.util.spec_from_file_location(
                name, init, submodule_search_locations=locations
            )
        else:
            package_spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
            package_spec.submodule_search_locations = locations
        if package_spec is None:
            raise InvalidInput(f"cannot import the recipe folder {spec.folder}")
        importlib.invalidate_caches()  # files that appeared since the last import
        package = importlib.util.module_from_spec(package_spec)
        sys.modules[name] = package
        try:
            if package_spec.loader is not None:
                package_spec.loader.exec_module(package)
        except BaseException:
            del sys.modules[name]
            raise
        return package
