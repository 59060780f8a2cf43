"""Choosing calls the way an incident names them: a caller's number, a list, time waited, and undoing a move."""

from __future__ import annotations

import collections
import datetime as dt
import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
import threading

import pytest

from conftest import json_lines, SCRIPT, run_script
from fake_org import FakeOrg, script_environment
from test_bulk import transfers_per_call

VIP = "+13175551234"


def records(out: str) -> dict[str, dict]:
    return {r["conversationId"]: r for r in json_lines(out)}


def minutes_ago(minutes: float) -> str:
    return (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=minutes)).isoformat()


def org_with_callers() -> tuple[FakeOrg, str, str, dict[str, str]]:
    org = FakeOrg()
    support, overflow = org.add_queue("Support"), org.add_queue("Overflow")
    calls = {"vip": org.add_waiting_call(support, caller=VIP),
             "other": org.add_waiting_call(support, caller="+442079460958"),
             "withheld": org.add_waiting_call(support, caller=None)}
    return org, support, overflow, calls


# --- --caller ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("pasted", ["+1 (317) 555-1234", "tel:+13175551234", "+13175551234", " +1 317.555.1234 "])
def test_caller_moves_the_call_from_that_number_and_no_other(run_inprocess, pasted: str) -> None:
    org, support, overflow, calls = org_with_callers()

    result = run_inprocess(org, "--caller", pasted, "--queue-id", overflow, "--json")

    assert result.code == 0, result.err
    assert records(result.out)[calls["vip"]]["status"] == "transferred"
    assert [t["conversationId"] for t in org.transfers] == [calls["vip"]]
    assert org.queue_of(calls["other"]) == support and org.queue_of(calls["withheld"]) == support
    [query] = [r["body"] for r in org.sent("POST", "/details/query")]
    [forms] = [g["predicates"] for g in query["segmentFilters"] if g["type"] == "or"]
    assert {(p["dimension"], p["value"]) for p in forms} == {("ani", f"tel:{VIP}"), ("ani", VIP), ("ani", VIP[1:])}


def test_caller_with_an_agent_moves_the_agent_leg(run_inprocess) -> None:
    org, support, overflow, calls = org_with_callers()
    agent = org.add_user("Ada", "ada@example.com")
    org.answer(calls["vip"], agent)
    [agent_leg] = org.live_participants(calls["vip"], "agent")

    result = run_inprocess(org, "--caller", VIP, "--queue-id", overflow)

    assert result.code == 0, result.err
    assert [t["participantId"] for t in org.transfers] == [agent_leg["id"]]


def test_caller_from_the_environment(run_inprocess) -> None:
    org, support, overflow, calls = org_with_callers()

    result = run_inprocess(org, "--queue-id", overflow, env={"TARGET_CALLER": "+1 317 555 1234"})

    assert result.code == 0, result.err
    assert [t["conversationId"] for t in org.transfers] == [calls["vip"]]


def test_two_live_calls_from_one_number_are_listed_never_guessed(run_inprocess) -> None:
    org, support, overflow, calls = org_with_callers()
    second = org.add_waiting_call(support, caller=VIP)

    result = run_inprocess(org, "--caller", VIP, "--queue-id", overflow)

    assert result.code == 2
    [error] = [line for line in result.err.splitlines() if "error:" in line]
    assert f"2 live calls are from {VIP}" in error and "--conversation-id" in error
    assert calls["vip"] in error and second in error and f"waiting in queue {support}" in error
    assert org.transfers == []


@pytest.mark.parametrize("case", ["the call ended", "only a withheld number called"])
def test_a_number_with_no_live_call_is_exit_4(run_inprocess, case: str) -> None:
    org, support, overflow, calls = org_with_callers()
    if case == "the call ended":
        org.end_call(calls["vip"])
    else:  # the VIP called with the number withheld: nothing links the call to the number
        org.conversations[calls["vip"]]["participants"][0].update(ani="anonymous", address="sip:anonymous@x.invalid")

    result = run_inprocess(org, "--caller", VIP, "--queue-id", overflow)

    assert result.code == 4
    assert f"no live voice call from {VIP}" in result.err and "withheld" in result.err and org.transfers == []


# --- --conversations-file -----------------------------------------------------------------------------

def test_a_list_moves_each_live_call_once_and_skips_the_rest_with_the_reason(run_inprocess, tmp_path) -> None:
    org = FakeOrg()
    support, overflow = org.add_queue("Support"), org.add_queue("Overflow")
    live = [org.add_waiting_call(support) for _ in range(3)]
    ended, there = org.add_waiting_call(support), org.add_waiting_call(overflow)
    org.end_call(ended)
    listing = tmp_path / "calls.txt"
    listing.write_text(f"\ufeff# from the report (a byte-order mark first, as spreadsheets write)\n{live[0]}\n\n{live[1]}  # the VIP\n{live[0]}\n{ended}\n"
                       f'{json.dumps({"conversationId": live[2], "status": "failed"})}\n{there.upper()}\n')

    result = run_inprocess(org, "--conversations-file", str(listing), "--queue-id", overflow, "--json")

    assert result.code == 0, result.err
    found = records(result.out)
    assert transfers_per_call(org) == collections.Counter(live)
    assert all(found[c]["status"] == "transferred" and found[c]["verified"] for c in live)
    assert found[ended]["status"] == "skipped" and "ended" in found[ended]["reason"]
    assert found[there]["status"] == "skipped" and "already waiting in queue" in found[there]["reason"]
    assert len(org.sent("GET", f"/conversations/{live[0]}")) >= 1  # each call was read live
    assert "moving 3 calls listed in" in result.err


@pytest.mark.parametrize("content, fragment", [
    ("{ok}\nnot-an-id\n", "line 2 is not a conversation id"),
    ("{ok}\n{{\"status\": \"transferred\"}}\n", "line 2"),
    ("# nothing but comments\n\n", "lists no conversation ids"),
])
def test_a_malformed_or_empty_list_stops_before_anything_is_sent(run_inprocess, tmp_path, content: str,
                                                                  fragment: str) -> None:
    org = FakeOrg()
    support, overflow = org.add_queue("Support"), org.add_queue("Overflow")
    listing = tmp_path / "calls.txt"
    listing.write_text(content.format(ok=org.add_waiting_call(support)))

    result = run_inprocess(org, "--conversations-file", str(listing), "--queue-id", overflow)

    assert result.code == 2
    [error] = [line for line in result.err.splitlines() if "error:" in line]
    assert fragment in error
    assert org.requests == []


# --- --undo -----------------------------------------------------------------------------------------

def test_undo_puts_back_exactly_the_calls_still_waiting_where_they_were_moved(run_inprocess, tmp_path) -> None:
    org = FakeOrg()
    support, overflow, other = org.add_queue("Support"), org.add_queue("Overflow"), org.add_queue("Other")
    agent = org.add_user("Ada", "ada@example.com")
    calls = [org.add_waiting_call(support) for _ in range(6)]
    moved = run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--json")
    assert moved.code == 0, moved.err
    results = tmp_path / "moved.jsonl"
    never_moved = "0b6c7a8e-2f1d-4c3b-9a5e-6d7f8e9a0b1c"  # a line that is not a move is not undone
    results.write_text(moved.out + json.dumps({"conversationId": never_moved, "status": "skipped"}) + "\n")
    answered, ended, elsewhere = calls[0], calls[1], calls[2]
    org.answer(answered, agent)
    org.end_call(ended)
    [leg] = org.live_participants(elsewhere, "acd")
    org._transfer(elsewhere, leg["id"], body={"queueId": other})  # someone moved it on since
    org.transfers.clear()

    result = run_inprocess(org, "--undo", str(results), "--json")

    assert result.code == 0, result.err
    found = records(result.out)
    back = calls[3:]
    assert all(org.queue_of(c) == support for c in back)
    assert transfers_per_call(org) == collections.Counter(back)
    assert all(found[c]["status"] == "transferred" and found[c]["queueId"] == support for c in back)
    assert all(found[c]["fromQueueId"] == overflow for c in back)
    assert found[answered]["status"] == "skipped" and f"with agent {agent}" in found[answered]["reason"]
    assert found[ended]["status"] == "skipped" and "ended" in found[ended]["reason"]
    assert found[elsewhere]["status"] == "skipped" and f"moved elsewhere since: it waits in queue {other}" in \
        found[elsewhere]["reason"]
    assert org.queue_of(elsewhere) == other

    again = run_inprocess(org, "--undo", str(results), "--json")

    assert again.code == 0, again.err
    assert all("already back in queue" in records(again.out)[c]["reason"] for c in back)


@pytest.mark.parametrize("content, fragment", [
    ('{"conversationId": "0b6c7a8e-2f1d-4c3b-9a5e-6d7f8e9a0b1c", "status": "dry-run"}\n',
     "has no record of a transferred call"),
    ("transferred abc participant def to queue ghi (verified)\n", "line 1 is not a result line of an earlier run"),
])
def test_an_undo_file_with_nothing_to_undo_is_exit_2(run_inprocess, tmp_path, content: str, fragment: str) -> None:
    org = FakeOrg()
    results = tmp_path / "moved.jsonl"
    results.write_text(content)

    result = run_inprocess(org, "--undo", str(results))

    assert result.code == 2 and fragment in result.err and org.requests == []


def test_undo_refuses_a_target_queue_flag(run_inprocess, tmp_path) -> None:
    org = FakeOrg()
    results = tmp_path / "moved.jsonl"
    results.write_text('{"conversationId": "x", "status": "transferred", "queueId": "q", "fromQueueId": "p"}\n')

    result = run_inprocess(org, "--undo", str(results), "--queue-name", "Support")

    assert result.code == 2 and "--undo moves each call back to the queue it came from" in result.err


# --- --waiting-over -------------------------------------------------------------------------------

@pytest.mark.parametrize("threshold", ["600", "600s", "10m", "0.5h"])
def test_waiting_over_moves_exactly_the_calls_older_than_the_threshold_oldest_first(run_inprocess,
                                                                                   threshold: str) -> None:
    org = FakeOrg()
    support, overflow = org.add_queue("Support"), org.add_queue("Overflow")
    limit = {"600": 10, "600s": 10, "10m": 10, "0.5h": 30}[threshold]
    waited = {minutes: org.add_waiting_call(support, started=minutes_ago(minutes)) for minutes in (1, 9, 12, 40, 25)}

    result = run_inprocess(org, "--from-queue", "Support", "--waiting-over", threshold, "--queue-id", overflow,
                           "--json", "--concurrency", "1")  # one at a time: the lines come in the order sent

    assert result.code == 0, result.err
    older = [waited[m] for m in sorted(waited, reverse=True) if m > limit]
    assert transfers_per_call(org) == collections.Counter(older)
    assert list(records(result.out)) == older  # oldest first
    assert all(org.queue_of(waited[m]) == support for m in waited if m <= limit)


def test_waiting_over_with_none_that_old_is_exit_4_and_needs_from_queue(run_inprocess) -> None:
    org = FakeOrg()
    support, overflow = org.add_queue("Support"), org.add_queue("Overflow")
    call = org.add_waiting_call(support, started=minutes_ago(2))

    none = run_inprocess(org, "--from-queue", "Support", "--waiting-over", "15m", "--queue-id", overflow)
    misplaced = run_inprocess(org, "--conversation-id", call, "--waiting-over", "15m", "--queue-id", overflow)
    malformed = run_inprocess(org, "--from-queue", "Support", "--waiting-over", "soon", "--queue-id", overflow)

    assert none.code == 4 and "no voice calls have waited over 900s in queue Support" in none.err
    assert misplaced.code == 2 and "--waiting-over goes with --from-queue" in misplaced.err
    assert malformed.code == 2
    assert "--waiting-over 'soon' must be a duration such as 90, 90s, 15m, 1h or 1h30m" in malformed.err
    assert org.transfers == []


# --- numbers that cannot be made E.164 ----------------------------------------------------------------

@pytest.mark.parametrize("number", ["0044 20 7946 0958", "317-555-1234", "+1 317 555 123", "call me", ""])
def test_a_number_without_its_country_code_is_refused_before_anything_is_sent(run_inprocess, number: str) -> None:
    org, support, overflow, _ = org_with_callers()

    result = run_inprocess(org, "--caller", number, "--queue-id", overflow)

    assert result.code == 2
    assert ("with its country code" in result.err) or ("--caller is empty" in result.err)
    assert org.requests == []


# --- the live progress line ---------------------------------------------------------------------------

def run_with_stderr(base_url: str, org: FakeOrg, argv: list[str], terminal: bool,
                    stdout_too: bool = False) -> tuple[int, str]:
    """Run the script with stderr (and stdout_too) on a pseudo-terminal, or a pipe; return its code and the screen."""
    env = script_environment(org, base_url, COLUMNS="120")
    if not terminal:
        done = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, env=env,
                              stdin=subprocess.DEVNULL, timeout=120)
        return done.returncode, done.stderr
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a terminal of 120 columns
    process = subprocess.Popen([sys.executable, str(SCRIPT), *argv], stdout=follower if stdout_too else
                               subprocess.DEVNULL, stderr=follower, stdin=subprocess.DEVNULL, env=env)
    os.close(follower)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed: the script ended
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    code = process.wait(timeout=120)
    reader.join(timeout=30)
    os.close(leader)
    return code, b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize("terminal", [True, False])
def test_progress_is_one_live_line_on_a_terminal_and_log_lines_elsewhere(served, terminal: bool) -> None:
    org = FakeOrg(latency=0.05)
    support, overflow = org.add_queue("Support"), org.add_queue("Overflow")
    calls = [org.add_waiting_call(support) for _ in range(30)]

    code, err = run_with_stderr(served(org), org, ["--from-queue", "Support", "--queue-id", overflow, "--yes",
                                                   "--concurrency", "1", "--wait", "0"], terminal)

    assert code == 0, err
    assert transfers_per_call(org) == collections.Counter(calls)
    assert "done: moved 30 (0 verified)" in err  # the summary, either way
    if terminal:  # one line, redrawn in place: carriage returns without new lines between the counts
        redraws = [part for part in err.replace("\r\n", "\n").split("\r") if "/30 calls" in part]
        assert len(redraws) >= 3 and "30/30 calls" in redraws[-1] and "calls/min" in redraws[-1]
        assert "\n" not in "".join(redraws[:-1])
    else:
        assert "\r" not in err and "/30 calls" not in err
        assert "transfer_call: moving 30 calls" in err


def test_result_lines_on_the_same_terminal_print_whole_above_the_live_line(served) -> None:
    org = FakeOrg(latency=0.05)
    support, overflow = org.add_queue("Support"), org.add_queue("Overflow")
    calls = [org.add_waiting_call(support) for _ in range(12)]

    code, screen = run_with_stderr(served(org), org, ["--from-queue", "Support", "--queue-id", overflow, "--yes",
                                                      "--concurrency", "1", "--wait", "0"], True, stdout_too=True)

    assert code == 0, screen
    shown = [line.rsplit("\r", 1)[-1] for line in screen.replace("\r\n", "\n").split("\n")]  # what stays on screen
    results = [line for line in shown if "transferred " in line]
    assert len(results) == 12 and all(line.startswith("transferred ") for line in results)
    assert sorted(line.split()[1] for line in results) == sorted(calls)


# --- the issue's own example, as a user runs it -------------------------------------------------------

def test_the_done_when_of_issue_12_as_a_user_runs_it(served, tmp_path) -> None:
    org = FakeOrg()
    support, overflow = org.add_queue("Support"), org.add_queue("Overflow")
    vip = org.add_waiting_call(support, caller=VIP, started=minutes_ago(30))
    waiting = [org.add_waiting_call(support, started=minutes_ago(m)) for m in (2, 15, 25)]
    base_url = served(org)
    env = script_environment(org, base_url)

    dry = run_script(base_url, org, "--from-queue", "Support", "--waiting-over", "10m", "--queue-name", "Overflow",
                     "--dry-run")
    assert dry.code == 0, dry.err
    assert dry.out.count("dry-run ") == 3 and waiting[0] not in dry.out and org.transfers == []

    by_caller = run_script(base_url, org, "--caller", "+1 (317) 555-1234", "--queue-name", "Overflow")
    assert by_caller.code == 0, by_caller.err
    assert org.queue_of(vip) == overflow and len(org.transfers) == 1

    moved = tmp_path / "moved.jsonl"
    with moved.open("w") as out:
        done = subprocess.run([sys.executable, str(SCRIPT), "--from-queue", "Support", "--queue-name", "Overflow",
                               "--yes", "--json"], stdout=out, stderr=subprocess.PIPE, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert all(org.queue_of(c) == overflow for c in waiting)

    undo = run_script(base_url, org, "--undo", str(moved), "--yes")
    assert undo.code == 0, undo.err
    assert all(org.queue_of(c) == support for c in waiting) and org.queue_of(vip) == overflow

    listed = subprocess.run(["bash", "-c", f'printf "%s\\n" {waiting[0]} {waiting[1]} | "$0" "$1" '
                             f'--conversations-file - --queue-id {overflow}', sys.executable, str(SCRIPT)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert org.queue_of(waiting[0]) == overflow and org.queue_of(waiting[1]) == overflow
    assert org.queue_of(waiting[2]) == support
