"""The client of a box over HTTP: the /v1 routes of its server, with the token as
`Authorization: Bearer`. A refusal raises the error the same mistake raises locally
(`errors.py`); a version's files are downloaded once into a cache folder and loaded from there."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from appliance.client.backend import Point, Row
from appliance.client.errors import Unreachable, message_of, refusal
from appliance.client.transfer import packed, unpack_into
from appliance.errors import Conflict, NotFound

RUNS_LISTED = 10_000
"""The most runs `GET …/runs` lists at once (its `limit`'s bound)."""
TIMEOUT = httpx.Timeout(600, connect=10)
"""Long reads on purpose: registering checks that the folder serves, a deploy loads and warms
a model, before they answer."""


class RemoteBackend:
    def __init__(self, url: str, token: str | None, cache: Path):
        self.where = url.rstrip("/")
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.where, headers=headers, timeout=TIMEOUT)
        parts = urlsplit(self.where)
        self._cache = cache / "models" / re.sub(r"[^A-Za-z0-9.-]+", "_", parts.netloc)

    def workspace(self, name: str, create: bool) -> Row:
        try:
            return self._json("GET", _ws(name))
        except NotFound:
            if not create:
                raise
        try:
            return self._json("POST", "/v1/workspaces", json={"name": name})
        except Conflict:  # made by someone else in between
            return self._json("GET", _ws(name))

    def workspaces(self) -> list[Row]:
        return self._json("GET", "/v1/workspaces")

    def create_run(
        self, workspace: str, *, recipe: str, params: Mapping[str, Any], name: str,
        dataset: str | None, seed: int | None,
    ) -> Row:  # fmt: skip
        body = {"recipe": recipe, "dataset": dataset, "params": _plain(params), "name": name,
                "seed": seed, "execute": False}  # fmt: skip
        return self._json("POST", f"{_ws(workspace)}/runs", json=body)

    def run(self, workspace: str, run_id: str) -> Row:
        return self._json("GET", _run(workspace, run_id))

    def runs(self, workspace: str, status: str | None, limit: int | None) -> list[Row]:
        # No limit is every run, as locally: as many as the route lists at once.
        query: dict[str, Any] = {"limit": RUNS_LISTED if limit is None else limit}
        if status is not None:
            query["status"] = status
        return self._json("GET", f"{_ws(workspace)}/runs", params=query)

    def run_metrics(self, workspace: str, run_id: str) -> dict[str, list[Row]]:
        out: dict[str, list[Row]] = {}
        for point in self._json("GET", f"{_run(workspace, run_id)}/metrics"):
            out.setdefault(point.pop("key"), []).append(point)
        for points in out.values():
            points.sort(key=lambda p: p["step"])  # stable: equal steps keep their order
        return out

    def log_metrics(self, workspace: str, run_id: str, points: Sequence[Point]) -> None:
        metrics = [{"key": k, "value": v, "step": s} for k, v, s in points]
        self._json("POST", f"{_run(workspace, run_id)}/metrics", json={"metrics": metrics})

    def log_params(self, workspace: str, run_id: str, params: Mapping[str, Any]) -> None:
        self._json("POST", f"{_run(workspace, run_id)}/params", json={"params": _plain(params)})

    def log_artifact(self, workspace: str, run_id: str, path: Path, name: str | None) -> list[str]:
        from appliance.runs.tracking import artifact_files  # named as the box names them

        stored = []
        for stored_name, file in artifact_files(path, name):
            with file.open("rb") as data:
                answer = self._json(
                    "POST", f"{_run(workspace, run_id)}/artifacts",
                    params={"name": stored_name}, files={"file": (file.name, data)},
                )  # fmt: skip
            stored += answer["stored"]
        return stored

    def end_run(self, workspace: str, run_id: str, status: str, error: str | None) -> None:
        body = {"status": status, "error": error}
        self._json("POST", f"{_run(workspace, run_id)}/end", json=body)

    def cancel_run(self, workspace: str, run_id: str) -> Row:
        return self._json("POST", f"{_run(workspace, run_id)}/cancel")

    def run_logs(self, workspace: str, run_id: str, tail: int) -> str:
        path = f"{_run(workspace, run_id)}/logs"
        try:
            answer = self._http.get(path, params={"tail": max(tail, 0)})
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        if answer.is_error:
            raise refusal(answer.status_code, message_of(answer))
        return answer.text

    def add_dataset(self, workspace: str, name: str, folder: Path) -> Row:
        with packed(folder) as archive:
            return self._json(
                "POST", f"{_ws(workspace)}/datasets/{_part(name)}", content=archive,
                headers={"content-type": "application/x-tar"},
            )  # fmt: skip

    def datasets(self, workspace: str) -> list[Row]:
        return self._json("GET", f"{_ws(workspace)}/datasets")

    def dataset(self, workspace: str, ref: str) -> Row:
        return self._json("GET", f"{_ws(workspace)}/datasets/{_part(ref)}")

    def dataset_diff(self, workspace: str, ref_a: str, ref_b: str) -> Row:
        path = f"{_ws(workspace)}/datasets/{_part(ref_b)}/diff"
        return self._json("GET", path, params={"against": ref_a})

    def models(self, workspace: str) -> list[Row]:
        return self._json("GET", f"{_ws(workspace)}/models")

    def model_versions(self, workspace: str, name: str) -> list[Row]:
        return self._json("GET", f"{_ws(workspace)}/models/{_part(name)}/versions")

    def model_version(self, workspace: str, ref: str) -> Row:
        return self._json("GET", f"{_ws(workspace)}/models/{_part(ref)}")

    def register_model(
        self, workspace: str, run: Row, folder: Path, name: str, *,
        metrics: Mapping[str, float], recipe: str | None, task: str | None,
    ) -> Row:  # fmt: skip
        fields = {"run_id": run["id"], "metrics": json.dumps(dict(metrics))}
        fields |= {k: v for k, v in (("recipe", recipe), ("task", task)) if v}
        with packed(folder) as archive:
            return self._json(
                "POST", f"{_ws(workspace)}/models/{_part(name)}/versions", data=fields,
                files={"archive": ("model.tar", archive, "application/x-tar")},
            )  # fmt: skip

    def set_alias(self, workspace: str, name: str, alias: str, version: int) -> Row:
        path = f"{_ws(workspace)}/models/{_part(name)}/aliases/{_part(alias)}"
        return self._json("PUT", path, json={"version": version})

    def unset_alias(self, workspace: str, name: str, alias: str) -> None:
        self._json("DELETE", f"{_ws(workspace)}/models/{_part(name)}/aliases/{_part(alias)}")

    def promote(self, workspace: str, name: str, version: int, alias: str, force: bool) -> Row:
        body = {"version": version, "alias": alias, "force": force}
        return self._json("POST", f"{_ws(workspace)}/models/{_part(name)}/promote", json=body)

    def model_folder(self, version: Row) -> Path:
        target = self._cache / _part(version["id"])
        if target.is_dir():  # a version's files never change: what was fetched once stays
            return target
        ref = f"{version['name']}@{version['version']}"
        path = f"{_ws(version['workspace'])}/models/{_part(ref)}/files"
        try:
            with self._http.stream("GET", path) as answer:
                if answer.is_error:
                    answer.read()
                    raise refusal(answer.status_code, message_of(answer))
                return unpack_into(answer.iter_bytes(), target)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None

    def deploy(self, body: Mapping[str, Any]) -> Row:
        return self._json("POST", "/v1/deployments", json=dict(body))

    def predict(self, endpoint: str, body: Mapping[str, Any]) -> Row:
        return self._json("POST", f"/v1/endpoints/{_part(endpoint)}/predict", json=dict(body))

    def feedback(self, prediction_id: str, body: Mapping[str, Any]) -> Row:
        path = f"/v1/predictions/{_part(prediction_id)}/feedback"
        return self._json("POST", path, json=dict(body))

    def close(self) -> None:
        self._http.close()

    def _json(self, method: str, path: str, **request: Any) -> Any:
        try:
            answer = self._http.request(method, path, **request)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        if answer.is_error:
            raise refusal(answer.status_code, message_of(answer))
        return answer.json() if answer.content else None

    def _unreachable(self, exc: httpx.HTTPError) -> Unreachable:
        return Unreachable(
            f"the server at {self.where} did not answer ({exc or type(exc).__name__}): is "
            "`appliance serve` running there, and is the address right?"
        )


def _part(value: str) -> str:
    """One path segment: names are checked by the server, so only quoting is needed here."""
    return quote(str(value), safe="@")


def _ws(workspace: str) -> str:
    return f"/v1/workspaces/{_part(workspace)}"


def _run(workspace: str, run_id: str) -> str:
    return f"{_ws(workspace)}/runs/{_part(run_id)}"


def _plain(params: Mapping[str, Any]) -> Any:
    """Params as JSON can carry them: what JSON has no type for (a Path) as its text, as the
    registry stores it locally."""
    return json.loads(json.dumps(dict(params), default=str))
