"""`python transfer_call.py` as a user runs it, against the fake org served on 127.0.0.1."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

from conftest import SCRIPT, Scenario, final_lines, final_records, run_script
from fake_org import script_environment


def test_user_id_transfers_the_agents_call_over_http(scenario: Scenario, served) -> None:
    org = scenario.org
    agent_leg = org.live_participants(scenario.agent_call, "agent")[0]

    result = run_script(served(org), org, "--user-id", scenario.agent, "--queue-id", scenario.billing)

    assert result.code == 0, result.err
    assert final_lines(result.out) == [f"transferred {scenario.agent_call} participant {agent_leg['id']} from queue "
                                       f"{scenario.support} to queue {scenario.billing} (moved, verified)"]
    assert [t["participantId"] for t in org.transfers] == [agent_leg["id"]]
    assert org.queue_of(scenario.agent_call) == scenario.billing
    assert org.client_secret not in result.out + result.err
    assert not any(token in result.out + result.err for token in org.issued_tokens)


def test_conversation_id_from_the_environment_with_json_output(scenario: Scenario, served) -> None:
    org = scenario.org
    env = {"TARGET_CONVERSATION_ID": scenario.waiting_call, "TARGET_QUEUE_NAME": "Billing Overflow"}

    result = run_script(served(org), org, "--json", env=env)

    assert result.code == 0, result.err
    [record] = final_records(result.out)
    assert (record["status"], record["verified"], record["queueId"]) == ("transferred", True, scenario.billing)
    assert len(org.transfers) == 1 and org.queue_of(scenario.waiting_call) == scenario.billing


def test_settings_come_from_a_dotenv_file_in_the_working_folder(scenario: Scenario, served, tmp_path: Path) -> None:
    org = scenario.org
    base_url = served(org)
    (tmp_path / ".env").write_text(f"GENESYS_CLIENT_ID={org.client_id}\nGENESYS_CLIENT_SECRET={org.client_secret}\n"
                                   f"GENESYS_API_HOST={base_url}\nTARGET_USER_ID={scenario.agent}\n"
                                   f"TARGET_QUEUE_ID={scenario.billing}\n")
    done = subprocess.run([sys.executable, str(SCRIPT), "-q"], capture_output=True, text=True,
                          env=script_environment(), cwd=tmp_path, timeout=60, stdin=subprocess.DEVNULL)

    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout.startswith(f"transferred {scenario.agent_call}")


def test_a_host_that_never_answers_ends_with_exit_6_in_seconds_naming_the_host(scenario: Scenario) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends: nothing listens there

    started = time.monotonic()
    result = run_script(f"http://127.0.0.1:{port}", scenario.org, "--user-id", scenario.agent,
                        "--queue-id", scenario.billing)  # the default retry budget: 60 s

    assert result.code == 6, result.err
    [error] = [line for line in result.err.splitlines() if "error:" in line]
    assert f"cannot reach 127.0.0.1:{port}: network error (ConnectError" in error
    assert "check GENESYS_API_HOST or GENESYS_REGION" in error
    assert "retrying" not in result.err  # one line says it all; the retries show with -v
    assert time.monotonic() - started < 40  # a safety net: it gives up after about 3 s, not the 60 s budget


def test_a_where_to_flag_wins_over_the_other_form_in_dotenv(scenario: Scenario, served, tmp_path: Path) -> None:
    org = scenario.org
    base_url = served(org)
    (tmp_path / ".env").write_text(f"GENESYS_CLIENT_ID={org.client_id}\nGENESYS_CLIENT_SECRET={org.client_secret}\n"
                                   f"GENESYS_API_HOST={base_url}\nTARGET_QUEUE_NAME=Support\n")
    done = subprocess.run([sys.executable, str(SCRIPT), "--user-id", scenario.agent, "--queue-id", scenario.billing],
                          capture_output=True, text=True, env=script_environment(), cwd=tmp_path, timeout=60,
                          stdin=subprocess.DEVNULL)

    assert done.returncode == 0, done.stderr
    assert org.queue_of(scenario.agent_call) == scenario.billing


def test_the_fake_org_explains_itself() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT.parent / "tests" / "fake_org.py"), "--help"],
                          capture_output=True, text=True, timeout=30)

    assert done.returncode == 0 and done.stdout.startswith("usage: fake_org.py")


def test_help_answers_without_importing_the_sdk() -> None:
    done = subprocess.run([sys.executable, "-X", "importtime", str(SCRIPT), "--help"], capture_output=True,
                          text=True, timeout=30)

    assert done.returncode == 0
    assert "PureCloudPlatformClientV2" not in done.stderr
    for text in ("exit codes (retry?)", "GENESYS_CLIENT_SECRET", "TARGET_QUEUE_NAME", "130"):
        assert text in done.stdout


def test_configuration_errors_answer_without_importing_the_sdk(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-X", "importtime", str(SCRIPT), "--user-id", "x"], capture_output=True,
                          text=True, timeout=30, cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})

    assert done.returncode == 2
    assert "import time:" in done.stderr
    assert not re.search(r"\|\s+PureCloudPlatformClientV2(\.\w+)*\s*$", done.stderr, re.MULTILINE)
    [error] = [line for line in done.stderr.splitlines() if "error:" in line]
    assert "GENESYS_CLIENT_ID and GENESYS_CLIENT_SECRET are not set" in error and "'x' is not an id" in error
