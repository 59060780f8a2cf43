"""What a new user's trial of the README found: a broken .env, an unusable state folder, a typo in a flag."""

from __future__ import annotations

import os

from fake_org import build_scenario


def test_a_line_of_the_env_file_that_cannot_be_read_is_named_not_quoted(run_inprocess, tmp_path) -> None:
    scenario = build_scenario()
    org = scenario.org
    env_file = tmp_path / "bad.env"
    env_file.write_text(f"GENESYS_CLIENT_ID={org.client_id}\nGENESYS_CLIENT_SECRET=\"{org.client_secret}\n"
                        "GENESYS_API_HOST=https://api.fake.test\n")
    for name in ("GENESYS_CLIENT_ID", "GENESYS_CLIENT_SECRET", "GENESYS_API_HOST"):
        os.environ.pop(name, None)

    result = run_inprocess(org, "--env-file", str(env_file), "--from-queue", "Support", "--list",
                           env={"GENESYS_CLIENT_ID": "", "GENESYS_CLIENT_SECRET": "", "GENESYS_API_HOST": ""})

    assert result.code == 2, result.err
    assert "line 2 cannot be read as KEY=VALUE (an unclosed quote?)" in result.err
    assert "is not set" not in result.err and "python-dotenv" not in result.err
    assert org.client_secret not in result.err + result.out and org.requests == []


def test_a_state_folder_that_cannot_be_made_is_exit_2_naming_it(run_inprocess, tmp_path, monkeypatch) -> None:
    scenario = build_scenario()
    home = tmp_path / "home"
    home.mkdir()
    (home / ".cache").symlink_to(tmp_path / "nowhere" / "cache")  # dangling
    monkeypatch.setenv("HOME", str(home))

    result = run_inprocess(scenario.org, "--conversation-id", scenario.waiting_call, "--queue-id", scenario.billing)

    assert result.code == 2, result.err
    assert "cannot use the state folder ~/.cache/transfer_call" in result.err and "unexpected" not in result.err
    assert scenario.org.transfers == []


def test_a_mistyped_flag_gets_the_flags_it_may_mean(run_inprocess) -> None:
    scenario = build_scenario()

    result = run_inprocess(scenario.org, "--conversation-id", scenario.waiting_call, "--queue-nme", "Billing Overflow")

    assert result.code == 2
    assert "did you mean --queue-name or --queue-id (not --queue-nme)?" in result.err
    assert scenario.org.requests == []


def test_a_quote_left_open_in_the_env_file_never_brings_the_secret_into_a_message(run_inprocess, tmp_path) -> None:
    """python-dotenv reads a quoted value on to the next quote: the lines it swallows are refused by number."""
    scenario = build_scenario()
    org = scenario.org
    env_file = tmp_path / "leak.env"
    env_file.write_text(f'GENESYS_TIMEOUT="30\nGENESYS_CLIENT_SECRET={org.client_secret}\nTARGET_QUEUE_NAME=Support"\n')

    result = run_inprocess(org, "--env-file", str(env_file), "--conversation-id", scenario.waiting_call,
                           "--queue-id", scenario.billing, "--json", env={"GENESYS_CLIENT_SECRET": ""})

    assert result.code == 2, result.err
    assert "line 1 cannot be read as KEY=VALUE" in result.err
    assert org.client_secret not in result.err + result.out and org.requests == []
