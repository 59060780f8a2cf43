"""Logs a cron job can use (issue 17): times on stderr off a terminal, a --json summary record on every run, and
"no call to move" (exit 4) as an outcome that -q silences."""

from __future__ import annotations

import datetime as dt
import os
import pty
import re
import subprocess
import sys

from conftest import SCRIPT, Scenario, json_lines, run_script, summary_record
from fake_org import script_environment

STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) transfer_call: ")


def test_stderr_off_a_terminal_is_a_timeline_in_utc(scenario: Scenario, served) -> None:
    org = scenario.org
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)

    result = run_script(served(org), org, "--user-id", scenario.agent, "--queue-id", scenario.billing)

    assert result.code == 0, result.err
    after = dt.datetime.now(dt.timezone.utc)
    lines = result.stamped_err.splitlines()
    assert lines and all(STAMP.match(line) for line in lines), lines
    times = [dt.datetime.strptime(STAMP.match(line).group(1), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
             for line in lines]
    assert before <= times[0] <= times[-1] <= after


def test_stderr_on_a_terminal_keeps_the_short_lines(scenario: Scenario, served) -> None:
    org = scenario.org
    base_url = served(org)
    leader, follower = pty.openpty()
    try:
        done = subprocess.run([sys.executable, str(SCRIPT), "--user-id", scenario.agent, "--queue-id",
                               scenario.billing], stdout=subprocess.PIPE, stderr=follower, stdin=subprocess.DEVNULL,
                              env=script_environment(org, base_url), timeout=60)
        os.close(follower)
        err = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            err += chunk
    finally:
        os.close(leader)
    assert done.returncode == 0
    lines = err.decode().splitlines()
    assert lines and all(line.startswith("transfer_call: ") for line in lines), lines


def test_json_ends_every_run_with_a_summary_record(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org

    moved = run_inprocess(org, "--user-id", scenario.agent, "--queue-id", scenario.billing, "--json")

    record = summary_record(moved.out)
    assert record["exitCode"] == moved.code == 0 and record["changed"] is True and record["reason"] is None
    assert record["counts"]["moved"] == record["counts"]["verified"] == 1
    assert record["requests"] == len(org.requests)
    assert [r["conversationId"] for r in json_lines(moved.out)] == [scenario.agent_call] * 2


def test_a_run_that_fails_before_any_call_still_writes_its_summary_record(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org

    unknown = run_inprocess(org, "--user-id", scenario.agent, "--queue-name", "Nowhere", "--json")
    misconfigured = run_inprocess(org, "--user-id", "not-an-id", "--queue-id", scenario.billing, "--json")

    for result, code, words in ((unknown, 2, "Nowhere"), (misconfigured, 2, "not-an-id")):
        assert result.code == code
        record = summary_record(result.out)
        assert record["exitCode"] == code and record["changed"] is False and words in record["reason"]
        assert json_lines(result.out) == []


def test_no_call_to_move_is_an_outcome_that_quiet_silences(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org
    org.end_call(scenario.waiting_call)

    quiet = run_inprocess(org, "--from-queue", "Support", "--queue-id", scenario.billing, "-q", "--json")
    plain = run_inprocess(org, "--from-queue", "Support", "--queue-id", scenario.billing)

    assert quiet.code == plain.code == 4
    assert quiet.err == ""
    assert summary_record(quiet.out)["reason"].startswith("no voice calls are waiting in queue Support")
    assert "error" not in plain.err and plain.err.splitlines()[-1].startswith("transfer_call: no voice calls are")


def test_readers_skip_summary_records(scenario: Scenario, run_inprocess, tmp_path) -> None:
    org = scenario.org
    first = run_inprocess(org, "--conversation-id", scenario.waiting_call, "--queue-id", scenario.billing, "--json")
    results = tmp_path / "moved.jsonl"
    results.write_text(first.out)

    again = run_inprocess(org, "--conversations-file", str(results), "--queue-id", scenario.billing, "--json")
    undone = run_inprocess(org, "--undo", str(results), "--yes", "--json")

    assert again.code == 0, again.err
    assert [r["reason"] for r in json_lines(again.out)] == ["done in the earlier run (its line 2: transferred)"]
    assert undone.code == 0, undone.err
    assert org.queue_of(scenario.waiting_call) == scenario.support


def test_the_summary_record_goes_to_stdout_not_to_the_output_file(scenario: Scenario, run_inprocess,
                                                                   tmp_path) -> None:
    org = scenario.org
    output = tmp_path / "moved.jsonl"

    result = run_inprocess(org, "--user-id", scenario.agent, "--queue-id", scenario.billing, "--json", "--output",
                           str(output))

    assert result.code == 0
    assert summary_record(result.out)["exitCode"] == 0
    assert all('"summary"' not in line for line in output.read_text().splitlines())


def test_a_flag_typo_is_one_error_line_and_a_summary_record(scenario: Scenario, run_inprocess) -> None:
    for argv in (["--yse"], ["--concurrency", "abc"], ["-v", "-q"], ["--queue-name"]):
        result = run_inprocess(scenario.org, "--user-id", scenario.agent, "--json", *argv)

        assert result.code == 2, argv
        [line] = result.err.splitlines()
        assert line.startswith("transfer_call: error: ") and line.endswith("(see --help)"), line
        assert summary_record(result.out)["exitCode"] == 2
    assert scenario.org.requests == []


def test_a_host_with_a_password_in_it_is_refused_unechoed(run_inprocess, scenario: Scenario) -> None:
    result = run_inprocess(scenario.org, "--user-id", scenario.agent, "--queue-id", scenario.billing,
                           env={"GENESYS_API_HOST": "https://ops:hunter2@api.mypurecloud.com"})

    assert result.code == 2
    assert "must not hold a user name or password" in result.err and "hunter2" not in result.err
