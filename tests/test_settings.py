"""Configuration: flags over environment over .env, regions, safe hosts, ids, and all problems at once."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import transfer_call
from transfer_call import UsageError, parse_args, resolve_settings

QUEUE_A, QUEUE_B, QUEUE_C = ("aaaaaaaa-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002",
                             "cccccccc-0000-4000-8000-000000000003")
USER = "dddddddd-0000-4000-8000-000000000004"
BASE_ENV = {"GENESYS_CLIENT_ID": "eeeeeeee-0000-4000-8000-000000000005", "GENESYS_CLIENT_SECRET": "s3cret-value",
            "TARGET_USER_ID": USER}


def resolve(argv: list[str], env: dict[str, str]) -> transfer_call.Settings:
    return resolve_settings(parse_args(argv), env)


def test_flag_wins_over_environment_which_wins_over_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"TARGET_QUEUE_ID={QUEUE_A}\nGENESYS_REGION=eu-west-1\n")
    env = {**BASE_ENV, "TARGET_QUEUE_ID": QUEUE_B}

    assert resolve(["--queue-id", QUEUE_C], env).queue_id == QUEUE_C
    assert resolve([], env).queue_id == QUEUE_B
    settings = resolve([], BASE_ENV)
    assert settings.queue_id == QUEUE_A and settings.base_url == "https://api.mypurecloud.ie"


def test_env_file_flag_reads_another_file_and_an_unreadable_one_is_a_usage_error(tmp_path: Path) -> None:
    other = tmp_path / "prod.env"
    other.write_text("TARGET_QUEUE_NAME=Billing\n")
    assert resolve(["--env-file", str(other)], BASE_ENV).queue_name == "Billing"

    with pytest.raises(UsageError, match="cannot read env file .*missing.env"):
        resolve(["--env-file", str(tmp_path / "missing.env")], BASE_ENV)


@pytest.mark.parametrize("region, url", [
    ("us-east-1", "https://api.mypurecloud.com"), ("us_east_1", "https://api.mypurecloud.com"),
    ("EU-CENTRAL-1", "https://api.mypurecloud.de"), ("mypurecloud.ie", "https://api.mypurecloud.ie"),
    ("usw2.pure.cloud", "https://api.usw2.pure.cloud"), ("", "https://api.mypurecloud.com"),
])
def test_regions_by_name_or_domain(region: str, url: str) -> None:
    assert resolve(["--queue-id", QUEUE_A], {**BASE_ENV, "GENESYS_REGION": region}).base_url == url


@pytest.mark.parametrize("host, accepted", [
    ("http://127.0.0.1:8089", True), ("http://localhost:8089/", True), ("http://[::1]:8089", True),
    ("https://api.example.com", True), ("http://10.0.0.5:8089", False), ("http://api.example.com", False),
    ("https://api.example.com/api/v2", False), ("ftp://127.0.0.1", False), ("127.0.0.1:8089", False),
])
def test_api_host_must_be_https_unless_loopback(host: str, accepted: bool) -> None:
    env = {**BASE_ENV, "GENESYS_API_HOST": host, "TARGET_QUEUE_ID": QUEUE_A}
    if accepted:
        assert resolve([], env).base_url == host.rstrip("/")
    else:
        with pytest.raises(UsageError, match="GENESYS_API_HOST"):
            resolve([], env)


def test_every_problem_is_reported_in_one_message() -> None:
    with pytest.raises(UsageError) as caught:
        resolve(["--queue-id", "not-a-uuid", "--user-email", "nobody", "--wait", "-1"],
                {"GENESYS_REGION": "atlantis", "GENESYS_RETRY_BUDGET": "soon"})
    message = str(caught.value)
    for fragment in ("GENESYS_CLIENT_ID and GENESYS_CLIENT_SECRET are not set", "'atlantis' is unknown",
                     "--queue-id 'not-a-uuid' is not an id", "'nobody' is not an email",
                     "--wait '-1' must be a number of seconds >= 0", "GENESYS_RETRY_BUDGET 'soon'"):
        assert fragment in message
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("bad", ["", "  ", "{%s}" % USER, "urn:uuid:" + USER, USER + "/../x", USER.replace("-", "")])
def test_ids_must_be_canonical_uuids(bad: str) -> None:
    with pytest.raises(UsageError):
        resolve(["--conversation-id", bad, "--queue-id", QUEUE_A], {k: v for k, v in BASE_ENV.items()
                                                                    if k != "TARGET_USER_ID"})


def test_the_secret_never_shows_in_repr() -> None:
    settings = resolve(["--queue-id", QUEUE_A], BASE_ENV)
    assert "s3cret-value" not in repr(settings) and "s3cret-value" not in str(settings)


def test_resolving_settings_does_not_import_the_sdk() -> None:
    import subprocess
    import sys

    code = ("import sys, transfer_call as t; t.resolve_settings(t.parse_args(['--queue-id', %r]), "
            "{'GENESYS_CLIENT_ID': %r, 'GENESYS_CLIENT_SECRET': 's', 'TARGET_USER_ID': %r}); "
            "print('PureCloudPlatformClientV2' in sys.modules)" % (QUEUE_A, QUEUE_C, USER))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(transfer_call.__file__).parent)
    assert done.stdout.strip() == "False", done.stderr


def test_timeout_comes_from_flag_or_environment_and_must_be_positive() -> None:
    env = {**BASE_ENV, "TARGET_QUEUE_ID": QUEUE_A}
    assert resolve([], env).timeout == transfer_call.DEFAULT_TIMEOUT
    assert resolve([], {**env, "GENESYS_TIMEOUT": "2.5"}).timeout == 2.5
    assert resolve(["--timeout", "4"], {**env, "GENESYS_TIMEOUT": "2.5"}).timeout == 4
    for bad in ("0", "-1", "nan", "inf", "soon"):
        with pytest.raises(UsageError, match=f"--timeout '{bad}' must be a number of seconds"):
            resolve(["--timeout", bad], env)
        with pytest.raises(UsageError, match=f"GENESYS_TIMEOUT '{bad}' must be a number of seconds"):
            resolve([], {**env, "GENESYS_TIMEOUT": bad})


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "-1", "soon", ""])
def test_wait_must_be_a_finite_number_of_seconds(bad: str) -> None:
    with pytest.raises(UsageError, match=f"--wait '{bad}' must be a number of seconds >= 0"):
        resolve(["--queue-id", QUEUE_A, f"--wait={bad}"], BASE_ENV)
    assert resolve(["--queue-id", QUEUE_A, "--wait", "0"], BASE_ENV).wait == 0


# --- a flag replaces every variable of its group; the environment replaces .env the same way ---

def test_a_where_to_flag_replaces_the_other_form_of_the_setting_from_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TARGET_QUEUE_NAME=Billing\n")

    settings = resolve(["--queue-id", QUEUE_A], BASE_ENV)

    assert (settings.queue_id, settings.queue_name) == (QUEUE_A, None)
    assert resolve(["--queue-name", "Support"], {**BASE_ENV, "TARGET_QUEUE_ID": QUEUE_B}).queue_id is None


def test_a_which_call_flag_replaces_every_which_call_variable(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SOURCE_QUEUE=Support\n")
    env = {**BASE_ENV, "TARGET_QUEUE_ID": QUEUE_A, "TARGET_USER_EMAIL": "ada@example.com"}

    settings = resolve(["--conversation-id", QUEUE_C], env)

    assert (settings.conversation_id, settings.user_id, settings.user_email, settings.from_queue) == (
        QUEUE_C, None, None, None)
    assert settings.single


def test_the_environment_replaces_the_dotenv_values_of_a_group(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"TARGET_QUEUE_NAME=Billing\nTARGET_USER_ID={USER}\n")

    settings = resolve([], {**BASE_ENV, "TARGET_QUEUE_ID": QUEUE_A, "TARGET_USER_ID": ""})

    assert (settings.queue_id, settings.queue_name, settings.user_id) == (QUEUE_A, None, USER)


@pytest.mark.parametrize("argv, env, dotenv, message", [
    (["--queue-id", QUEUE_A, "--queue-name", "Billing"], {}, "", "give only one of --queue-id / --queue-name"),
    ([], {"TARGET_QUEUE_ID": QUEUE_A, "TARGET_QUEUE_NAME": "Billing"}, "",
     "give only one of TARGET_QUEUE_ID / TARGET_QUEUE_NAME (both set in the environment)"),
    ([], {}, f"TARGET_QUEUE_ID={QUEUE_A}\nTARGET_QUEUE_NAME=Billing\n",
     "give only one of TARGET_QUEUE_ID / TARGET_QUEUE_NAME (both set in .env)"),
])
def test_a_real_conflict_names_where_each_value_came_from(tmp_path: Path, argv, env, dotenv, message) -> None:
    if dotenv:
        (tmp_path / ".env").write_text(dotenv)
    with pytest.raises(UsageError) as caught:
        resolve(argv, {**BASE_ENV, **env})
    assert message in str(caught.value)


def test_a_missing_variable_says_which_env_file_was_read(tmp_path: Path) -> None:
    env = {"TARGET_USER_ID": USER, "TARGET_QUEUE_ID": QUEUE_A}
    with pytest.raises(UsageError, match=r"GENESYS_CLIENT_ID and GENESYS_CLIENT_SECRET are not set "
                                         r"\(looked in the environment; no \.env file was read\)"):
        resolve([], env)
    (tmp_path / "prod.env").write_text("GENESYS_CLIENT_ID=eeeeeeee-0000-4000-8000-000000000005\n")
    with pytest.raises(UsageError, match=r"GENESYS_CLIENT_SECRET is not set \(looked in the environment and "
                                         r".*prod\.env\)"):
        resolve(["--env-file", str(tmp_path / "prod.env")], env)


def test_a_missing_dependency_is_a_usage_error_naming_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)  # what `import httpx` does when it is not installed

    with pytest.raises(UsageError, match=r"'httpx' is not installed .*pip install -r requirements.txt"):
        transfer_call.make_org(resolve(["--queue-id", QUEUE_A], BASE_ENV))


def test_the_org_is_one_setting_the_environment_replaces_in_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("GENESYS_API_HOST=https://api.mypurecloud.com\n")

    settings = resolve(["--queue-id", QUEUE_A], {**BASE_ENV, "GENESYS_REGION": "eu-west-1"})

    assert (settings.base_url, settings.region) == ("https://api.mypurecloud.ie", "eu-west-1")


@pytest.mark.parametrize("name, value, fragment", [
    ("GENESYS_CLIENT_ID", "s3cret-pasted-in-the-wrong-place", "GENESYS_CLIENT_ID is not an OAuth client id"),
    ("GENESYS_CLIENT_SECRET", "\u201cs3cret\u201d", "GENESYS_CLIENT_SECRET has a character that is not ASCII"),
])
def test_credentials_that_cannot_be_right_are_refused_without_echoing_them(name: str, value: str,
                                                                            fragment: str) -> None:
    with pytest.raises(UsageError) as caught:
        resolve(["--queue-id", QUEUE_A], {**BASE_ENV, name: value})
    assert fragment in str(caught.value) and value not in str(caught.value)
