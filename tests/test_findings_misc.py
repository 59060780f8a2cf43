"""Reproductions of review findings 3, 4, 5, 7 and 8: each test fails on the code as reviewed, for the reason named.

Analytics lag (findings 5 and 7c) is modelled by freezing the fake org's analytics view of a call
(FakeOrg._analytics_view) at what it was before the live call changed.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

import transfer_call
from conftest import ORIGINAL_MAKE_API_CLIENT, SCRIPT, run_script, summary_record
from fake_org import FakeOrg, script_environment

SAFETY = 30.0  # seconds: only a net for a hung run, far above what any of these takes


def summary_records(out: str) -> list[dict]:
    """Every --json summary record on stdout (lines that are not JSON are skipped)."""
    found = []
    for line in out.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("summary") is True:
            found.append(record)
    return found


def lines_about(text: str, conversation_id: str) -> list[str]:
    return [line for line in text.splitlines() if conversation_id in line]


def freeze_analytics(monkeypatch: pytest.MonkeyPatch, org: FakeOrg, *conversation_ids: str) -> None:
    """Analytics lags: from now on it shows these calls as they are now, whatever happens to them live."""
    frozen = {cid: copy.deepcopy(org._analytics_view(org.conversations[cid])) for cid in conversation_ids}
    live_view = org._analytics_view

    def lagging(conversation: dict) -> dict | None:
        if conversation["id"] in frozen:
            return copy.deepcopy(frozen[conversation["id"]])
        return live_view(conversation)

    monkeypatch.setattr(org, "_analytics_view", lagging)


def acd_leg(org: FakeOrg, conversation_id: str) -> str:
    return org.live_participants(conversation_id, "acd")[0]["id"]


def moved_live_elsewhere(org: FakeOrg, conversation_id: str, queue_id: str) -> None:
    """Someone else (an agent, another tool) moved the call to queue_id: its old queue leg ended, a new one waits."""
    org._apply_transfer({"conversationId": conversation_id, "participantId": acd_leg(org, conversation_id),
                         "queueId": queue_id}, None)


# --- 3: GENESYS_API_HOST is never echoed ---------------------------------------------------------

@pytest.mark.parametrize("api_host, secrets, part", [
    ("https:/opsuser:Pa55word-9q@api.example.com", ("opsuser", "Pa55word-9q"), "scheme"),
    ("opsuser:Pa55word-9q@api.example.com", ("opsuser", "Pa55word-9q"), "scheme"),
    ("https://api.example.com/?access_token=SECRET123", ("access_token=", "SECRET123"), "query"),
    ("https://api.example.com/SECRET123", ("SECRET123",), "path"),
    ("https://admin:hunter2\uff20x@api.mypurecloud.com", ("admin", "hunter2"), "scheme"),  # urlsplit quotes it whole
], ids=["mistyped-scheme", "no-scheme", "token-in-query", "token-in-path", "full-width-at"])
def test_a_malformed_api_host_is_never_echoed(run_inprocess, api_host: str, secrets: tuple[str, ...],
                                              part: str) -> None:
    org = FakeOrg()
    support, billing = org.add_queue("Support"), org.add_queue("Billing")
    call = org.add_waiting_call(support)

    result = run_inprocess(org, "--conversation-id", call, "--queue-id", billing, "--json",
                           env={"GENESYS_API_HOST": api_host})

    assert result.code == 2, result.err
    assert org.requests == []  # nothing was sent anywhere
    for secret in secrets:
        assert secret not in result.err, f"{secret!r} echoed on stderr: {result.err}"
        assert secret not in result.out, f"{secret!r} echoed in the --json summary record: {result.out}"
    assert summary_record(result.out)["exitCode"] == 2
    assert part in result.err.lower(), f"the message does not name the {part}: {result.err}"


# --- 4: a moved call always gets its line ----------------------------------------------------------

def test_a_moved_call_whose_line_cannot_be_built_still_gets_a_line(monkeypatch, run_inprocess, tmp_path) -> None:
    org = FakeOrg()
    support, overflow = org.add_queue("Support"), org.add_queue("Overflow")
    calls = [org.add_waiting_call(support) for _ in range(3)]
    victim = calls[0]  # the oldest: the first the single worker takes
    original_record = transfer_call.Call.record

    def record(self: transfer_call.Call) -> dict:
        if self.conversation_id == victim and self.moved == "yes":  # only after its transfer was accepted
            raise RuntimeError("a bug building the record")
        return original_record(self)

    monkeypatch.setattr(transfer_call.Call, "record", record)
    output = tmp_path / "moved.jsonl"

    result = run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--json", "--output", str(output),
                           "--concurrency", "1", "--yes")

    assert [t["conversationId"] for t in org.transfers].count(victim) == 1  # it did move, once
    assert org.queue_of(victim) == overflow
    assert result.code == 8, result.err
    for where, text in (("stdout", result.out), ("--output", output.read_text() if output.exists() else "")):
        said = [line for line in lines_about(text, victim) if "transferred" in line]
        assert said, f"no line on {where} says {victim} was transferred:\n{text}"
    assert summary_record(result.out)["changed"] is True


# --- 5: in place, a call analytics still shows in the queue but that has left it -------------------

@pytest.mark.parametrize("left", ["answered", "moved elsewhere"])
def test_in_place_change_skips_a_call_that_has_left_the_queue_analytics_lists(monkeypatch, run_inprocess,
                                                                              left: str) -> None:
    org = FakeOrg()
    support, overflow = org.add_queue("Support"), org.add_queue("Overflow")
    agent = org.add_user("Ada Agent", "ada@example.com")
    still_waiting, gone = org.add_waiting_call(support), org.add_waiting_call(support)
    freeze_analytics(monkeypatch, org, gone)
    if left == "answered":
        org.answer(gone, agent)
    else:
        moved_live_elsewhere(org, gone, overflow)

    result = run_inprocess(org, "--from-queue", "Support", "--priority", "7", "--yes")

    assert org.sent("PATCH", f"/api/v2/routing/conversations/{still_waiting}")  # sanity: the rest is changed
    assert org.routing_of(still_waiting)["priority"] == 7
    assert org.sent("PATCH", f"/api/v2/routing/conversations/{gone}") == [], \
        f"the call that {left} was PATCHed where it is now"
    if left == "moved elsewhere":
        assert org.queue_of(gone) == overflow and org.routing_of(gone)["priority"] == 0
    assert [change["conversationId"] for change in org.routing_changes] == [still_waiting]
    [line] = lines_about(result.out, gone)
    assert f"in queue {support}" not in line, f"its line says it is in Support: {line}"


# --- 7a: --version and --help write no summary record --------------------------------------------

@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_version_and_help_with_json_write_no_summary_record(served, flag: str) -> None:
    org = FakeOrg()
    base_url = served(org)

    result = run_script(base_url, org, flag, "--json", timeout=SAFETY)

    assert result.code == 0, result.err
    assert summary_records(result.out) == [], f"{flag} --json wrote a summary record: {result.out.splitlines()[-1]}"
    assert ("transfer_call.py " + transfer_call.__version__ if flag == "--version" else "usage:") in result.out
    assert org.requests == []


# --- 7b: --check writes nothing into the --output file ---------------------------------------------

def test_check_with_output_keeps_the_file_readable_as_result_lines(run_inprocess, tmp_path) -> None:
    org = FakeOrg()
    support, billing = org.add_queue("Support"), org.add_queue("Billing")
    call = org.add_waiting_call(support)
    output = tmp_path / "moved.jsonl"
    moved = run_inprocess(org, "--conversation-id", call, "--queue-id", billing, "--json", "--output", str(output))
    assert moved.code == 0 and org.queue_of(call) == billing, moved.err
    lines_before = output.read_text()

    check = run_inprocess(org, "--check", "--output", str(output))
    assert check.code == 0, check.err
    undo = run_inprocess(org, "--undo", str(output), "--yes")

    assert undo.code == 0, undo.err
    assert org.queue_of(call) == support  # put back
    assert [t["queueId"] for t in org.transfers] == [billing, support]
    assert output.read_text().startswith(lines_before)
    assert "permission" not in output.read_text(), f"--check wrote into the --output file:\n{output.read_text()}"


# --- 7c: --list never claims it would move an ended leg ------------------------------------------

@pytest.mark.parametrize("left", ["answered", "moved elsewhere"])
def test_list_does_not_claim_it_would_move_a_leg_that_has_ended(monkeypatch, run_inprocess, left: str) -> None:
    org = FakeOrg()
    support, overflow, billing = org.add_queue("Support"), org.add_queue("Overflow"), org.add_queue("Billing")
    agent = org.add_user("Ada Agent", "ada@example.com")
    waiting, gone = org.add_waiting_call(support), org.add_waiting_call(support)
    ended_leg = acd_leg(org, gone)
    freeze_analytics(monkeypatch, org, gone)
    if left == "answered":
        org.answer(gone, agent)
    else:
        moved_live_elsewhere(org, gone, overflow)
    assert not org.live_participants(gone, "acd") or org.queue_of(gone) == overflow  # its Support leg has ended

    result = run_inprocess(org, "--from-queue", "Support", "--queue-id", billing, "--list")

    assert result.code == 0, result.err
    assert f"would move participant {acd_leg(org, waiting)}" in "".join(lines_about(result.out, waiting))  # sanity
    for line in lines_about(result.out, gone):
        assert f"would move participant {ended_leg}" not in line, f"--list would move an ended leg: {line}"
    assert org.transfers == [] and org.routing_changes == []


# --- 7d: a signal while starting still ends a --json run with its summary record ------------------

HOLD_WHILE_STARTING = textwrap.dedent('''\
    """Test hook: hold the run at its first import after it installed its start-up signal handler."""
    import os
    import sys
    import time

    _READY = os.environ.get("TRANSFER_CALL_TEST_READY")


    class _HoldWhileStarting:
        held = False

        def find_spec(self, name, path=None, target=None):
            import _signal
            if not _HoldWhileStarting.held and callable(_signal.getsignal(_signal.SIGTERM)):
                _HoldWhileStarting.held = True  # once: the test's signal arrives while the run waits here
                open(_READY, "w").close()
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and not os.path.exists(_READY + ".go"):
                    time.sleep(0.01)
            return None


    if _READY:
        sys.meta_path.insert(0, _HoldWhileStarting())
    ''')


def test_sigterm_while_starting_still_writes_the_summary_record(served, tmp_path) -> None:
    """Not timing-dependent: an import hook (sitecustomize) holds the script right after it installed its start-up
    handler, at its first import; the signal is sent once the hook says it holds there."""
    org = FakeOrg()
    support, billing = org.add_queue("Support"), org.add_queue("Billing")
    call = org.add_waiting_call(support)
    base_url = served(org)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HOLD_WHILE_STARTING)
    ready = tmp_path / "ready"
    env = script_environment(org, base_url, TRANSFER_CALL_TEST_READY=str(ready),
                             PYTHONPATH=os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")])))
    process = subprocess.Popen([sys.executable, str(SCRIPT), "--conversation-id", call, "--queue-id", billing,
                                "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + SAFETY
        while not ready.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ready.exists(), f"the hook never held the run (exit {process.poll()})"
        process.send_signal(signal.SIGTERM)
        Path(str(ready) + ".go").touch()  # let the run go on, should it not end at once
        out, err = process.communicate(timeout=SAFETY)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM" in err
    assert org.transfers == []
    records = summary_records(out)
    assert records, f"no --json summary record after a SIGTERM while starting; stdout: {out!r}, stderr: {err!r}"
    assert json.loads(out.splitlines()[-1]) == records[-1]  # stdout's last line
    assert records[-1]["exitCode"] == process.returncode and records[-1]["changed"] is False


# --- 8a: one org, one set of locks and journal, however its host is spelled ------------------------

@pytest.mark.parametrize("first, second", [
    ("https://api.fake.test", "https://api.fake.test:443"),
    ("https://api.fake.test", "https://API.fake.test."),
    ("https://api.fake.test:443/", "https://api.fake.test."),
])
def test_the_journal_is_shared_however_the_host_is_spelled(run_inprocess, first: str, second: str) -> None:
    """The first run's transfer is accepted but not applied yet (and no recentTransfers tell of it): only this
    machine's journal keeps a second run, spelling the same host differently, from moving the call twice."""
    org = FakeOrg(transfer_delay=600, show_recent_transfers=False)
    support, billing = org.add_queue("Support"), org.add_queue("Billing")
    call = org.add_waiting_call(support)

    sent = run_inprocess(org, "--conversation-id", call, "--queue-id", billing, "--wait", "0",
                         env={"GENESYS_API_HOST": first})
    assert sent.code == 0 and len(org.transfers) == 1, sent.err
    again = run_inprocess(org, "--conversation-id", call, "--queue-id", billing, "--wait", "0",
                          env={"GENESYS_API_HOST": second})

    assert len(org.transfers) == 1, f"{second} did not see the journal {first} wrote: the call was moved twice"
    assert again.code not in (0, 8), again.err
    assert "a run on this machine sent a transfer of this very leg" in again.out


def test_the_lock_is_shared_however_the_host_is_spelled(run_inprocess) -> None:
    """A run holding this machine's lock on a conversation (spelled one way) keeps out one spelling it another."""
    org = FakeOrg()
    support, billing = org.add_queue("Support"), org.add_queue("Billing")
    call = org.add_waiting_call(support)
    argv = ["--conversation-id", call, "--queue-id", billing]
    settings = transfer_call.resolve_settings(transfer_call.parse_args(argv), {
        "GENESYS_CLIENT_ID": org.client_id, "GENESYS_CLIENT_SECRET": org.client_secret,
        "GENESYS_API_HOST": "https://api.fake.test"})
    holder = ORIGINAL_MAKE_API_CLIENT(settings, transport=httpx.MockTransport(org.handle))
    holder.lock(f"conversation {call}")  # as that run does once it has found the call
    try:
        result = run_inprocess(org, *argv, env={"GENESYS_API_HOST": "https://API.fake.test:443"})
    finally:
        holder.close()

    assert org.transfers == [], "the call was moved while another run held its lock"
    assert result.code == 7, result.err


# --- 8b: the journal's hold is not ended by a step of the wall clock -------------------------------

def test_a_wall_clock_step_does_not_end_the_journal_hold(run_inprocess, monkeypatch) -> None:
    """The clock is stepped an hour forward (NTP, a VM resumed) between two runs a moment apart: the transfer the
    first sent is still not applied, and the second must still hold the call back. Only time.time jumps; the
    journal's day file (from datetime) stays the same."""
    org = FakeOrg(transfer_delay=600, show_recent_transfers=False)
    support, billing = org.add_queue("Support"), org.add_queue("Billing")
    call = org.add_waiting_call(support)
    sent = run_inprocess(org, "--conversation-id", call, "--queue-id", billing, "--wait", "0")
    assert sent.code == 0 and len(org.transfers) == 1, sent.err

    wall_clock = time.time
    monkeypatch.setattr(time, "time", lambda: wall_clock() + 3600)
    again = run_inprocess(org, "--conversation-id", call, "--queue-id", billing, "--wait", "0")

    assert len(org.transfers) == 1, "after a clock step the journal no longer held the call: it was moved twice"
    assert again.code not in (0, 8), again.err


# --- 8c: no transfer without its journal entry ---------------------------------------------------

def test_no_transfer_is_sent_when_its_journal_entry_cannot_be_written(run_inprocess, monkeypatch) -> None:
    """The journal file cannot be written (as when it is made unwritable, or the disk is full): the transfer must not
    go out unrecorded. The lock files in the same folder still work."""
    org = FakeOrg()
    support, billing = org.add_queue("Support"), org.add_queue("Billing")
    call = org.add_waiting_call(support)
    state_file = transfer_call.Org._state_file

    def failing_journal(self, what: str, mode: str, suffix: str):
        if what.startswith("transfers") and mode != "r":
            raise transfer_call.UsageError("cannot use the state folder ~/.cache/transfer_call (Permission denied); "
                                           "check HOME and that folder's permissions")
        return state_file(self, what, mode, suffix)

    monkeypatch.setattr(transfer_call.Org, "_state_file", failing_journal)

    result = run_inprocess(org, "--conversation-id", call, "--queue-id", billing, "--json")

    assert org.sent("POST", "/replace/queue") == [], "the transfer was sent without its journal entry"
    assert org.transfers == [] and org.queue_of(call) == support
    assert result.code not in (0, 8), result.err
    assert summary_record(result.out)["changed"] is False
