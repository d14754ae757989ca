"""A server and its home: the home's id, the record a running server keeps in its home, how the
one HTTP client finds it (and ignores a stale record), and the refusal of a request that names
another home. Real servers on loopback, in this process; `test_cli_serve.py` does the same with
`appliance serve` subprocesses and the CLI."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from serving_harness import free_port, running_server

from appliance.errors import ApplianceError
from appliance.server.client import ServerClient, ServerRefused
from appliance.server.record import (
    HOME_HEADER,
    INSTANCE_HEADER,
    RECORD_FILE,
    ServerRecord,
    home_id,
    read_record,
    write_record,
)
from appliance.services import Services


def test_a_home_keeps_one_id_and_another_home_has_another(tmp_path: Path) -> None:
    first = home_id(tmp_path / "a")
    assert first == home_id(tmp_path / "a") and len(first) == 16
    assert home_id(tmp_path / "b") != first
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["home-id"]  # no leftovers


def test_a_running_server_is_recorded_found_and_unrecorded_when_it_stops(
    services: Services,
) -> None:
    settings = services.settings
    assert ServerClient.find(settings) is None  # no record: nothing to probe
    with running_server(services, restore=False) as http:
        record = read_record(settings.home)
        assert record is not None and record.url == str(http.base_url).rstrip("/")
        assert record.pid == os.getpid() and record.home_id == home_id(settings.home)
        found = ServerClient.find(settings)
        assert found is not None and found.base_url == record.url
        with found:
            assert found.get("/v1/deployments") == []
        answer = http.get("/v2/health/live")
        assert answer.headers[INSTANCE_HEADER] == record.instance
        assert answer.headers[HOME_HEADER] == record.home_id
    assert not (settings.home / RECORD_FILE).exists()
    assert ServerClient.find(settings) is None


def test_a_request_that_names_another_home_is_refused(services: Services, tmp_path: Path) -> None:
    other = Services.open(home=tmp_path / "other")
    try:
        with running_server(services, restore=False) as http:
            refused = http.get(
                "/v1/deployments", headers={HOME_HEADER: home_id(other.settings.home)}
            )
            assert refused.status_code == 421
            message = refused.json()["error"]
            assert f"this server serves the home {services.settings.home}" in message
            assert "APPLIANCE_HOME" in message
            # Without the header (curl, Triton clients) and with its own home's id: served.
            assert http.get("/v1/deployments").status_code == 200
            mine = {HOME_HEADER: home_id(services.settings.home)}
            assert http.get("/v1/deployments", headers=mine).status_code == 200
            # The client of the other home, pointed at this server by hand, gets the message.
            with ServerClient(str(http.base_url), other.settings) as client:
                with pytest.raises(ServerRefused, match="this server serves the home") as caught:
                    client.get("/v1/deployments")
                assert caught.value.status == 421
    finally:
        other.close()


def test_a_stale_record_is_ignored(services: Services) -> None:
    settings = services.settings
    mine = home_id(settings.home)

    def record(url: str, pid: int, instance: str = "0" * 16) -> None:
        host = socket.gethostname()
        write_record(settings.home, ServerRecord(url, instance, mine, pid, host))

    # Left by a killed server: its pid is gone.
    record("http://127.0.0.1:1", pid=2**22 + 12345)
    assert read_record(settings.home) is None
    # A live pid (pids are reused) but nothing listens there any more.
    record(f"http://127.0.0.1:{free_port()}", pid=os.getpid())
    assert read_record(settings.home) is not None and ServerClient.find(settings) is None
    # Something answers there, but it is another server (another instance id).
    with running_server(services, restore=False) as http:
        record(str(http.base_url), pid=os.getpid())
        assert ServerClient.find(settings) is None
    # Garbage is no record.
    (settings.home / RECORD_FILE).write_text("{not json")
    assert read_record(settings.home) is None
    (settings.home / RECORD_FILE).write_text(json.dumps({"url": "x"}))
    assert read_record(settings.home) is None


def test_the_client_sends_the_token_and_reports_what_the_server_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPLIANCE_TOKEN", "s3cret")
    with Services.open() as services, running_server(services, restore=False) as http:
        denied = http.post("/v1/deployments/none/rollback", json={"workspace": "ads"})
        assert denied.status_code == 401  # the harness's plain client has no token
        client = ServerClient(str(http.base_url), services.settings)
        with pytest.raises(ServerRefused, match="the server refused: no workspace 'ads'"):
            client.post_json("/v1/deployments/none/rollback", {"workspace": "ads"})
    with pytest.raises(ApplianceError, match=f"the server at {client.base_url} did not answer"):
        client.get("/v1/deployments")  # it has stopped
    client.close()


def test_without_a_port_the_background_server_takes_a_free_one(services: Services) -> None:
    with running_server(services, restore=False) as http:
        assert http.base_url.port not in (None, 0, 8765)
        assert http.get("/v2/health/live").status_code == 200
