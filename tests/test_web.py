"""`appliance web` as a real process: over HTTP (the login, its cookie, the throttle, the gates on
the page, its static files and its websocket), over the terminal's websocket (a viewer's TUI
shows the workspaces and refuses writes), and in headless Chromium driven through its DevTools
protocol: redirected to the login page, a wrong token refused, a viewer's token let in, and the
workspaces screen reaching the browser's terminal."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from serving_harness import free_port, wait_until_up
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from appliance.access.roles import Principal, Role
from appliance.services import Services
from tui.web.child import child_environment
from tui.web.login import COOKIE
from tui.web.sessions import Sessions

WORKSPACE = "shop-photos"
ANSI = re.compile(r"\x1b(\[[0-9;?<>=$]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-Za-z]|.)")


class Web:
    def __init__(self, base: str, home: Path, tokens: dict[str, str]):
        self.base, self.home, self.tokens = base, home, tokens
        self.ws = base.replace("http://", "ws://") + "/ws"

    def login(self, name: str) -> str:
        answer = httpx.post(f"{self.base}/login", data={"token": self.tokens[name]})
        assert answer.status_code == 303, answer.text
        return answer.cookies[COOKIE]


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    home = tmp_path_factory.mktemp("web") / "home"
    with Services.open(home=home) as services:
        services.workspaces.create(WORKSPACE)
        tokens = {
            "vera": services.users.add("vera", Role.viewer)[1],
            "dev": services.users.add("dev", Role.developer)[1],
            "rita": services.users.add("rita", Role.viewer)[1],
            "limited": services.users.add("limited", Role.viewer, WORKSPACE)[1],
        }
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env["APPLIANCE_HOME"] = str(home)
    server = subprocess.Popen(
        [sys.executable, "-m", "appliance", "web", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(server, f"{base}/login", timeout=30, what="appliance web")
        yield Web(base, home, tokens)
    finally:
        server.terminate()
        output = server.communicate(timeout=20)[0].decode()
    for token in tokens.values():
        assert token not in output  # never in the log


def test_everything_but_the_login_needs_a_session(web: Web) -> None:
    for path in ("/", "/static/js/textual.js", "/static/", "/download/x"):
        answer = httpx.get(web.base + path)
        assert answer.status_code == 303 and answer.headers["location"] == "/login", path
    assert httpx.get(web.base + "/ws").status_code == 401
    with pytest.raises(InvalidStatus) as refused:
        connect(web.ws, origin=web.base).close()
    assert refused.value.response.status_code == 401
    forged = {"Cookie": f"{COOKIE}=not-a-session"}
    assert httpx.get(web.base + "/", headers=forged).status_code == 303
    page = httpx.get(web.base + "/login")
    assert page.status_code == 200 and 'name="token"' in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_wrong_tokens_are_refused_then_throttled(web: Web) -> None:
    # From 127.0.0.2, so that the throttle it earns does not hold back the other tests.
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2")) as other:
        login = f"{web.base}/login"
        assert other.post(login, data={"token": ""}).status_code == 401  # no guess: not counted
        for _ in range(6):
            answer = other.post(login, data={"token": "apl_guess_wrong"})
            assert answer.status_code == 401 and "not known" in answer.text
        throttled = other.post(login, data={"token": web.tokens["vera"]})  # the right one too
        assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) >= 1
        assert COOKIE not in throttled.cookies
    assert httpx.post(login, data={"token": web.tokens["vera"]}).status_code == 303


def test_a_login_sets_a_strict_http_only_cookie_holding_no_token(web: Web) -> None:
    answer = httpx.post(f"{web.base}/login", data={"token": web.tokens["vera"]})
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"]
    flags = {part.strip().split("=")[0].lower(): part for part in cookie.split(";")}
    assert {"httponly", "samesite", "max-age", "path"} <= set(flags)
    assert flags["samesite"].strip() == "SameSite=Strict"
    assert flags["max-age"].strip() == f"Max-Age={720 * 60}"
    session = answer.cookies[COOKIE]
    assert len(session) >= 40 and web.tokens["vera"] not in cookie
    page = httpx.get(web.base + "/", cookies={COOKIE: session})
    assert page.status_code == 200 and "/static/js/textual.js" in page.text
    # Every asset the page names is this server's: no CDN on an offline box.
    assets = re.findall(r'\b(?:src|href)="([^"]+)"|url\("([^"]+)"\)', page.text)
    assert len(assets) >= 4 and all(a.startswith("/static/") for a in map("".join, assets))
    assert f'data-session-websocket-url="{web.ws}"' in page.text
    assert "googleapis" not in page.text
    assert httpx.get(web.base + "/static/js/textual.js", cookies={COOKIE: session}).is_success


def test_refused_logins_and_terminals(web: Web) -> None:
    limited = httpx.post(f"{web.base}/login", data={"token": web.tokens["limited"]})
    assert limited.status_code == 403 and "limited to the workspace" in limited.text
    foreign = httpx.post(
        f"{web.base}/login", data={"token": web.tokens["vera"]},
        headers={"Origin": "http://127.0.0.1:1"},
    )  # fmt: skip
    assert foreign.status_code == 403 and COOKIE not in foreign.cookies
    assert httpx.get(web.base + "/login", headers={"Host": "evil.example"}).status_code == 400
    session = web.login("vera")
    with pytest.raises(InvalidStatus) as refused:  # a page on another port of this box
        connect(
            web.ws, origin="http://127.0.0.1:1",
            additional_headers={"Cookie": f"{COOKIE}={session}"},
        ).close()  # fmt: skip
    assert refused.value.response.status_code == 403


def test_a_revoked_user_opens_no_terminal(web: Web) -> None:
    session = web.login("rita")
    with Services.open(home=web.home) as services:
        services.users.revoke("rita")
    with pytest.raises(InvalidStatus) as refused:
        connect(web.ws, origin=web.base, additional_headers={"Cookie": f"{COOKIE}={session}"})
    assert refused.value.response.status_code == 401
    assert httpx.get(web.base + "/", cookies={COOKIE: session}).status_code == 303  # logged out


def test_sessions_expire_and_their_ids_are_random() -> None:
    now = [0.0]
    sessions = Sessions(60, clock=lambda: now[0])
    vera = Principal("vera", Role.viewer)
    first, second = sessions.open(vera), sessions.open(vera)
    assert first != second and len(first) >= 40
    now[0] = 59.0
    assert sessions.principal(first) is vera and sessions.seconds_left(first) == 1.0
    now[0] = 60.0
    assert sessions.principal(first) is None and sessions.principal("") is None


def _screen(socket: ClientConnection, until: str, timeout: float = 20) -> str:
    """The terminal's output as text, read until it shows `until`."""
    received, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            message = socket.recv(timeout=0.5)
        except TimeoutError:
            continue
        if isinstance(message, bytes):
            received += message
            text = " ".join(ANSI.sub(" ", received.decode(errors="replace")).split())
            if until in text:
                return text
    raise AssertionError(f"the terminal never showed {until!r}")


def test_a_viewers_terminal_shows_the_workspaces_and_refuses_writes(web: Web) -> None:
    session = web.login("vera")
    with connect(
        f"{web.ws}?width=120&height=40", origin=web.base,
        additional_headers={"Cookie": f"{COOKIE}={session}"},
    ) as socket:  # fmt: skip
        # The table's header comes first, the workspace once the workspaces are read (on a
        # loaded machine, a while later: a run saw the header beside "Loading workspaces…").
        text = _screen(socket, f"workspace {WORKSPACE}", timeout=60)
        assert "workspace datasets runs models deployments" in text
        for keys in ("n", "cars", "\r"):  # n: a new workspace; its name; Enter
            socket.send(json.dumps(["stdin", keys]))
            time.sleep(0.3)
        assert "is a viewer" in _screen(socket, "read-only")
    with Services.open(home=web.home) as services:
        assert [w["name"] for w in services.workspaces.list()] == [WORKSPACE]


def test_a_developers_terminal_links_to_the_homes_running_server_a_viewers_not(web: Web) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "appliance", "--home", str(web.home), "serve", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until_up(server, f"http://127.0.0.1:{port}/v2/health/live")
        with connect(
            f"{web.ws}?width=120&height=40", origin=web.base,
            additional_headers={"Cookie": f"{COOKIE}={web.login('dev')}"},
        ) as socket:  # fmt: skip
            # The header names the server the TUI talks to.
            _screen(socket, f"workspace {WORKSPACE} · http://127.0.0.1:{port}")
        with connect(
            f"{web.ws}?width=120&height=40", origin=web.base,
            additional_headers={"Cookie": f"{COOKIE}={web.login('vera')}"},
        ) as socket:  # fmt: skip
            text = _screen(socket, f"workspace {WORKSPACE}", timeout=60)
            assert f":{port}" not in text
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_child_holds_the_admin_token_only_for_an_admin() -> None:
    from appliance.access.authenticate import ADMIN

    base = {"APPLIANCE_TOKEN": "secret", "PATH": "/bin"}
    viewer = child_environment(base, Principal("vera", Role.viewer), "/h")
    assert viewer["APPLIANCE_TOKEN"] == viewer["APPLIANCE_TOKEN_FILE"] == ""
    assert (viewer["APPLIANCE_ACTOR"], viewer["APPLIANCE_ROLE"]) == ("vera", "viewer")
    assert viewer["APPLIANCE_HOME"] == "/h" and viewer["PATH"] == "/bin"
    assert child_environment(base, ADMIN, "/h")["APPLIANCE_TOKEN"] == "secret"


def test_beyond_loopback_it_needs_tokens_to_log_in_with(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    done = subprocess.run(
        [sys.executable, "-m", "appliance", "--home", str(tmp_path / "h"), "web", "--host",
         "0.0.0.0", "--port", str(free_port())],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1 and "beyond loopback" in done.stderr, done.stderr


def test_help_loads_neither_textual_serve_nor_aiohttp() -> None:
    probe = (
        "import sys; from appliance.cli import cli; assert 'web' in cli.commands; "
        "print(sorted(m for m in ('textual_serve', 'aiohttp', 'torch') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


# --- a real browser -------------------------------------------------------------------------


class Chromium:
    """Headless Chromium and a minimal DevTools protocol client over its page's websocket."""

    def __init__(self, profile: Path):
        self.process = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--remote-debugging-port=0", f"--user-data-dir={profile}", "--window-size=1280,800",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        active, deadline = profile / "DevToolsActivePort", time.monotonic() + 20
        while not active.exists() or len(active.read_text().split()) < 2:
            assert time.monotonic() < deadline and self.process.poll() is None, "no Chromium"
            time.sleep(0.05)
        port = active.read_text().split()[0]
        pages = httpx.get(f"http://127.0.0.1:{port}/json/list").json()
        url = next(p["webSocketDebuggerUrl"] for p in pages if p["type"] == "page")
        self._stack = contextlib.ExitStack()
        self.socket = self._stack.enter_context(connect(url, max_size=None))
        self.events: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self.call("Network.enable")
        self.call("Page.enable")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        ask = next(self._ids)
        self.socket.send(json.dumps({"id": ask, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=30))
            if message.get("id") == ask:
                assert "error" not in message, message
                return message["result"]
            self.events.append(message)

    def evaluate(self, expression: str) -> Any:
        found = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return found["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20) -> Any:
        deadline = time.monotonic() + timeout
        while not (value := self.evaluate(expression)):
            assert time.monotonic() < deadline, f"never true: {expression}"
            time.sleep(0.1)
        return value

    def terminal_text(self) -> str:
        """What the page's websocket received, as text: xterm draws it on a canvas."""
        self.evaluate("1")  # collect the events that arrived meanwhile
        payloads = [
            e["params"]["response"] for e in self.events
            if e["method"] == "Network.webSocketFrameReceived"
        ]  # fmt: skip
        raw = b"".join(
            base64.b64decode(p["payloadData"]) if p["opcode"] == 2 else p["payloadData"].encode()
            for p in payloads
        )
        return " ".join(ANSI.sub(" ", raw.decode(errors="replace")).split())

    def close(self) -> None:
        self._stack.close()
        self.process.terminate()
        self.process.wait(timeout=10)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary (apt-get install chromium; .ci/run does)"
)
def test_a_browser_logs_in_with_a_token_and_sees_the_workspaces(web: Web, tmp_path: Path) -> None:
    browser = Chromium(tmp_path / "profile")
    try:
        browser.call("Page.navigate", url=web.base + "/")
        browser.wait_for("location.pathname == '/login' && !!document.forms[0]")
        submit = "document.querySelector('#token').value = {}; document.forms[0].submit()"
        browser.evaluate(submit.format(json.dumps("apl_wrong_token")))
        assert "not known" in browser.wait_for("document.querySelector('#error')?.innerText")
        assert browser.evaluate("location.pathname") == "/login"

        browser.evaluate(submit.format(json.dumps(web.tokens["vera"])))
        browser.wait_for("location.pathname == '/' && !!document.querySelector('.xterm')")
        assert browser.evaluate("document.cookie") == ""  # HttpOnly: no script reads it
        browser.wait_for("document.body.classList.contains('-first-byte')")
        deadline = time.monotonic() + 20
        while WORKSPACE not in (text := browser.terminal_text()):
            assert time.monotonic() < deadline, f"no workspaces screen: {text[-500:]!r}"
            time.sleep(0.2)
        assert "workspace datasets runs models deployments" in text
        requested = [
            e["params"]["request"]["url"] for e in browser.events
            if e["method"] == "Network.requestWillBeSent"
        ]  # fmt: skip
        assert requested and all(u.startswith(web.base) for u in requested), requested
    finally:
        browser.close()
