import pytest

from appliance.errors import InvalidInput
from appliance.names import split_ref, validate_name


@pytest.mark.parametrize("name", ["classified-ads", "a", "v1.2_final", "X9"])
def test_good_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "must not be empty"),
        ("..", "must not contain"),
        ("a/b", "must not contain"),
        ("a\\b", "must not contain"),
        ("x..y", "must not contain"),
        (".hidden", "must start with a letter or digit"),
        ("-flag", "must start with a letter or digit"),
        ("has space", "may use only"),
        ("café", "may use only"),
        ("a" * 65, "at most 64"),
    ],
)
def test_bad_names(name: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        validate_name(name, "workspace name")


def test_split_ref() -> None:
    assert split_ref("captioner") == ("captioner", None)
    assert split_ref("captioner@production") == ("captioner", "production")
    with pytest.raises(InvalidInput, match="ends with '@'"):
        split_ref("captioner@")


def test_a_unicode_digit_is_not_a_number_anywhere(services, photos) -> None:  # type: ignore[no-untyped-def]
    # "³".isdigit() is True but int("³") fails: the OpenAPI fuzzer's ?window=³ was a 500.
    from appliance.monitoring.predictions import parse_window
    from appliance.scheduler.jobs import parse_trigger

    for text in ("³", "³d"):
        with pytest.raises(InvalidInput, match="not a duration"):
            parse_window(text)
        with pytest.raises(InvalidInput, match="neither 'every N"):
            parse_trigger(f"every {text}")
    assert parse_window("7d") == 7 * 86_400
    services.workspaces.create("ws")
    services.datasets.add("ws", "photos", photos)
    with pytest.raises(InvalidInput, match="neither a version number nor a digest prefix"):
        services.datasets.get("ws", "photos@³")
