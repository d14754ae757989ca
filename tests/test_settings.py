import dataclasses
from pathlib import Path

import pytest

from appliance.errors import InvalidInput
from appliance.settings import Settings


def test_every_setting_has_help_and_the_docs_are_current() -> None:
    import runpy

    for field in dataclasses.fields(Settings):
        assert len(field.metadata.get("help", "")) > 20, f"{field.name} has no help text"
    script = runpy.run_path(str(Path(__file__).parents[1] / "scripts" / "docs_settings.py"))
    docs = (Path(__file__).parents[1] / "docs" / "settings.md").read_text()
    assert docs == script["render"](), "docs/settings.md is stale: run scripts/docs_settings.py"


def test_sources_in_order(tmp_path: Path) -> None:
    home = tmp_path / "h"
    home.mkdir()
    (home / "appliance.toml").write_text('port = 9000\nhost = "0.0.0.0"\ntoken = "from-toml"\n')
    env = {"APPLIANCE_PORT": "9100", "APPLIANCE_TOKEN": "from-env"}
    settings = Settings.load(home=home, environ=env, token="from-flag")
    assert settings.home == home.absolute()
    assert settings.host == "0.0.0.0"  # toml beats default
    assert settings.port == 9100  # env beats toml
    assert settings.token == "from-flag"  # flag beats env
    assert settings.max_body_bytes == 10_000_000  # default


def test_home_from_environment(tmp_path: Path) -> None:
    settings = Settings.load(environ={"APPLIANCE_HOME": str(tmp_path / "x")})
    assert settings.home == tmp_path / "x"
    assert settings.registry_path == tmp_path / "x" / "registry.db"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("colour = 1\n", "unknown setting 'colour'"),
        ('port = "abc"\n', "port must be an integer"),
        ("port = [\n", "not valid TOML"),
        ('home = "/elsewhere"\n', "cannot be set inside the home"),
        ("port = -5\n", "must not be negative"),
    ],
)
def test_bad_config_file(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "appliance.toml").write_text(toml)
    with pytest.raises(InvalidInput, match=message):
        Settings.load(home=tmp_path, environ={})


def test_bad_environment_value(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="APPLIANCE_PORT: port must be an integer"):
        Settings.load(home=tmp_path, environ={"APPLIANCE_PORT": "eighty"})


def test_the_token_can_come_from_a_file_and_a_token_set_elsewhere_wins(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cret-from-file\n")
    loaded = Settings.load(home=tmp_path, environ={"APPLIANCE_TOKEN_FILE": str(secret)})
    assert loaded.token == "s3cret-from-file"
    both = {"APPLIANCE_TOKEN_FILE": str(secret), "APPLIANCE_TOKEN": "from-env"}
    assert Settings.load(home=tmp_path, environ=both).token == "from-env"
    secret.write_text("")
    with pytest.raises(InvalidInput, match="is empty: write the token on its first line"):
        Settings.load(home=tmp_path, environ={"APPLIANCE_TOKEN_FILE": str(secret)})
    with pytest.raises(InvalidInput, match="cannot be read"):
        Settings.load(home=tmp_path, environ={"APPLIANCE_TOKEN_FILE": str(tmp_path / "none")})
