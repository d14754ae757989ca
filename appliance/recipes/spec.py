"""Reading `recipe.toml`: name, task, the module, the gate, and typed params with their help."""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.errors import InvalidInput
from appliance.names import validate_name

RECIPE_FILE = "recipe.toml"
_TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    default: Any
    help: str


@dataclass(frozen=True)
class Gate:
    metric: str
    direction: str  # "higher" or "lower" is better
    tolerance: float
    also: tuple[Gate, ...] = ()
    """Further metrics a candidate must not be worse on (`[gate.also.NAME]` in recipe.toml),
    each checked where both versions produce it: `keyword_adherence` only on rows with
    keywords."""

    def worse_beyond_tolerance(self, candidate: float, current: float) -> bool:
        if self.direction == "higher":
            return candidate < current - self.tolerance
        return candidate > current + self.tolerance

    @property
    def checks(self) -> tuple[Gate, ...]:
        """The gate metric first, then the others."""
        return (Gate(self.metric, self.direction, self.tolerance), *self.also)


@dataclass(frozen=True)
class RecipeSpec:
    name: str
    task: str
    description: str
    folder: Path
    module: str
    gate: Gate
    params: dict[str, Param]

    @property
    def module_path(self) -> Path:
        return self.folder / self.module

    def code_hash(self) -> str:
        """sha256 over the recipe's source files: what a run's lineage records."""
        digest = hashlib.sha256()
        for path in sorted(self.folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                digest.update(path.relative_to(self.folder).as_posix().encode() + b"\0")
                digest.update(path.read_bytes() + b"\0")
        return digest.hexdigest()

    def resolve_params(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults overridden by `overrides` (strings from the CLI are parsed by type)."""
        unknown = sorted(set(overrides) - set(self.params))
        if unknown:
            known = ", ".join(sorted(self.params))
            raise InvalidInput(
                f"recipe '{self.name}' has no param {', '.join(unknown)} (params: {known})"
            )
        values = {name: p.default for name, p in self.params.items()}
        for name, raw in overrides.items():
            values[name] = _parse(self.params[name], raw)
        return values


def parse_overrides(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """`["epochs=3", "lr=0.01"]` → dict; a pair without `=` is refused."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--param {pair!r} must look like name=value")
        out[key.strip()] = value.strip()
    return out


def read_recipe(folder: Path) -> RecipeSpec:
    path = folder / RECIPE_FILE
    if not path.is_file():
        raise InvalidInput(f"{folder} has no {RECIPE_FILE}; is it a recipe folder?")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path} is not valid TOML ({exc})") from None
    try:
        name = validate_name(str(data["name"]), "recipe name")
        module = str(data.get("module", f"{name}.py"))
        gate_data = data.get("gate", {})
        also = gate_data.get("also", {})
        if not isinstance(also, dict) or not all(isinstance(v, dict) for v in also.values()):
            raise InvalidInput(f"{path}: gate.also must hold tables: [gate.also.METRIC]")
        gate = Gate(
            metric=str(gate_data["metric"]),
            direction=str(gate_data.get("direction", "higher")),
            tolerance=float(gate_data.get("tolerance", 0.0)),
            also=tuple(
                Gate(str(name), str(t.get("direction", "higher")), float(t.get("tolerance", 0.0)))
                for name, t in also.items()
            ),
        )
        params = {key: _param(key, value) for key, value in data.get("params", {}).items()}
    except KeyError as exc:
        raise InvalidInput(f"{path} is missing {exc.args[0]!r}") from None
    if any(check.direction not in ("higher", "lower") for check in gate.checks):
        raise InvalidInput(f"{path}: gate.direction must be 'higher' or 'lower'")
    if "/" in module or ".." in module or not (folder / module).is_file():
        raise InvalidInput(f"{path}: module '{module}' must be a file inside the recipe folder")
    return RecipeSpec(
        name=name,
        task=str(data.get("task", "")),
        description=str(data.get("description", "")),
        folder=folder.resolve(),
        module=module,
        gate=gate,
        params=params,
    )


def _param(name: str, table: Any) -> Param:
    if not isinstance(table, dict) or table.get("type") not in _TYPES or "default" not in table:
        raise InvalidInput(
            f"param '{name}' needs a table with type (int, float, str or bool), default and help"
        )
    param = Param(name, table["type"], table["default"], str(table.get("help", "")))
    return Param(name, param.type, _parse(param, param.default), param.help)


def _parse(param: Param, raw: Any) -> Any:
    kind = _TYPES[param.type]
    if isinstance(raw, str) and kind is not str:
        text = raw.strip().lower()
        if kind is bool:
            if text in _TRUE | _FALSE:
                return text in _TRUE
        else:
            try:
                return kind(raw)
            except ValueError:
                pass
        raise InvalidInput(f"param '{param.name}' must be {param.type}, got {raw!r}")
    if kind is float and isinstance(raw, int) and not isinstance(raw, bool):
        return float(raw)
    if not isinstance(raw, kind) or (kind is int and isinstance(raw, bool)):
        raise InvalidInput(f"param '{param.name}' must be {param.type}, got {raw!r}")
    return raw
