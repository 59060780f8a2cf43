"""Configuration: flags over environment over .env, regions, safe hosts, ids, and all problems at once."""

from __future__ import annotations

from pathlib import Path

import pytest

import transfer_call
from transfer_call import UsageError, parse_args, resolve_settings

QUEUE_A, QUEUE_B, QUEUE_C = ("aaaaaaaa-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002",
                             "cccccccc-0000-4000-8000-000000000003")
USER = "dddddddd-0000-4000-8000-000000000004"
BASE_ENV = {"GENESYS_CLIENT_ID": "id", "GENESYS_CLIENT_SECRET": "s3cret-value", "TARGET_USER_ID": USER}


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
    other.write_text(f"TARGET_QUEUE_NAME=Billing\n")
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
    for fragment in ("GENESYS_CLIENT_ID is not set", "GENESYS_CLIENT_SECRET is not set", "'atlantis' is unknown",
                     "--queue-id 'not-a-uuid' is not an id", "'nobody' is not an email", "--wait must be >= 0",
                     "GENESYS_RETRY_BUDGET 'soon'"):
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
            "{'GENESYS_CLIENT_ID': 'i', 'GENESYS_CLIENT_SECRET': 's', 'TARGET_USER_ID': %r}); "
            "print('PureCloudPlatformClientV2' in sys.modules)" % (QUEUE_A, USER))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(transfer_call.__file__).parent)
    assert done.stdout.strip() == "False", done.stderr


def test_timeout_comes_from_flag_or_environment_and_must_be_positive() -> None:
    env = {**BASE_ENV, "TARGET_QUEUE_ID": QUEUE_A}
    assert resolve([], env).timeout == transfer_call.DEFAULT_TIMEOUT
    assert resolve([], {**env, "GENESYS_TIMEOUT": "2.5"}).timeout == 2.5
    assert resolve(["--timeout", "4"], {**env, "GENESYS_TIMEOUT": "2.5"}).timeout == 4
    for bad in ("0", "-1", "nan", "soon"):
        with pytest.raises(UsageError, match="GENESYS_TIMEOUT"):
            resolve(["--timeout", bad], env)
