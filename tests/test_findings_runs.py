"""Findings of the review on runs that overlap, result lines fed back, and a stop after a failed --output write.

Each test asserts on what the org received and where the calls are afterwards (org.transfers,
org.sent, org.queue_of), then on exit codes. Runs against one served org address share their
locks and journal ($HOME/.cache/transfer_call; conftest points HOME at a temp dir). Overlaps are
arranged with the fake org's request holds (org.hold_requests: a request kept on its way in until
the test lets it through) and events, never with sleeps that bet on the machine's speed; every
wait has a bound far above what it needs, as a safety net only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import transfer_call
from conftest import SCRIPT, run_script
from fake_org import FakeOrg, build_scenario, script_environment
from test_bulk import evacuation_org
from test_operations import start, wait_until


# --- helpers ------------------------------------------------------------------------------------

def three_queue_org(**options) -> tuple[FakeOrg, str, str, str]:
    """Support (A), Billing Overflow (B) and Sales (C), no call anywhere yet; sockets beat every half second."""
    scenario = build_scenario(**options)
    org = scenario.org
    for call in (scenario.waiting_call, scenario.agent_call):
        org.end_call(call)
    org.heartbeat_period = 0.5
    return org, scenario.support, scenario.billing, org.add_queue("Sales")


def transfers_of(org: FakeOrg, call: str) -> list[str]:
    """The queues the org accepted transfers of this call to, in order."""
    return [t["queueId"] for t in org.transfers if t["conversationId"] == call]


def transfer_posts(org: FakeOrg, call: str | None = None) -> list[dict]:
    return [r for r in org.sent("POST", "/replace/queue") if call is None or f"/conversations/{call}/" in r["path"]]


def following(org: FakeOrg, queue_id: str) -> bool:
    """A --follow run has subscribed to queue_id's calls and its socket is open."""
    topic = f"v2.routing.queues.{queue_id}.conversations.calls"
    return org.sockets_opened > 0 and any({"id": topic} in (r["body"] or []) for r in org.sent("PUT", "/subscriptions"))


def stop_process(process: subprocess.Popen) -> tuple[str, str]:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    return process.communicate(timeout=30)


# A run of transfer_call.py that waits, just before it takes its "calls poured into queue" lock, until the file
# "go" appears in $RENDEZVOUS (it says it got there by a file of its own): the test lets two runs through together,
# so that each one's checks are made before the other takes that lock, the worst interleaving of a check-then-lock.
AT_THE_LOCK = """
import os, sys, time
sys.path.insert(0, os.environ["TRANSFER_CALL_DIR"])
import transfer_call

take = transfer_call.Org.lock

def lock(self, what, shared=None):
    if what.startswith("calls poured into queue"):
        folder = os.environ["RENDEZVOUS"]
        open(os.path.join(folder, "at-lock-%d" % os.getpid()), "w").close()
        deadline = time.monotonic() + 20  # a safety net: the test says go within moments
        while not os.path.exists(os.path.join(folder, "go")) and time.monotonic() < deadline:
            time.sleep(0.01)
    return take(self, what, shared)

transfer_call.Org.lock = lock
sys.exit(transfer_call.main(sys.argv[1:]))
"""


# --- finding 1: moved back and forth --------------------------------------------------------------

def test_a_follow_taking_calls_out_of_the_target_of_a_bulk_move_still_running_is_busy(served) -> None:
    """A bulk move B→A is still sending (one transfer slow on the way) when a --follow A→B starts: the follow would
    move back to B the calls the bulk just moved to A. It must exit 7 (Busy) and move nothing."""
    org, support, billing, _ = three_queue_org()
    moved, slow = org.add_waiting_call(billing, caller="+15550801"), org.add_waiting_call(billing, caller="+15550802")
    hold = org.hold_requests("POST", f"/conversations/{slow}/participants/[^/]+/replace/queue", timeout=30)
    base_url = served(org)
    bulk = start(base_url, org, "--from-queue", "Billing Overflow", "--queue-id", support, "--yes", "--wait", "2")
    try:
        wait_until(lambda: hold.arrived.is_set() and org.queue_of(moved) == support or bulk.poll() is not None, 30)
        assert bulk.poll() is None, bulk.communicate()
        assert transfers_of(org, moved) == [support]  # the bulk run moved one call to A, and still sends the other

        back = run_script(base_url, org, "--from-queue", "Support", "--queue-id", billing, "--follow", "1s", "--yes",
                          "--wait", "1", timeout=30)
    finally:
        hold.release()
        _, bulk_err = bulk.communicate(timeout=60)

    assert transfers_of(org, moved) == [support], ("moved back to B by the follow run", back.err)
    assert len(transfer_posts(org, moved)) == 1
    assert org.queue_of(moved) == support and org.queue_of(slow) == support, bulk_err
    assert back.code == 7, back.err
    assert "transfer_call run " in back.err


def test_a_follow_into_the_source_of_a_running_follow_is_busy(served) -> None:
    """A --follow B→C runs; a --follow A→B is started: each call it moves into B would be moved on to C (moved
    twice). The A→B run must exit 7, its target being the source of a running run, and move nothing."""
    org, support, billing, sales = three_queue_org()
    call = org.add_waiting_call(support, caller="+15550811")
    base_url = served(org)
    onward = start(base_url, org, "--from-queue", "Billing Overflow", "--queue-id", sales, "--follow", "60s", "--yes")
    try:
        wait_until(lambda: following(org, billing) or onward.poll() is not None, 30)
        assert onward.poll() is None, onward.communicate()

        into = run_script(base_url, org, "--from-queue", "Support", "--queue-id", billing, "--follow", "1s", "--yes",
                          "--wait", "1", timeout=30)  # (today it would wait 10 s to see in B a call moved on to C)
        if transfers_of(org, call):  # it went into B: the running follow takes it on to C at its event (today)
            wait_until(lambda: len(transfers_of(org, call)) >= 2 or onward.poll() is not None, 10)
    finally:
        _, onward_err = stop_process(onward)

    assert transfers_of(org, call) == [], ("moved into B, then on to C", into.err, onward_err)
    assert org.queue_of(call) == support
    assert into.code == 7, into.err
    assert "transfer_call run " in into.err


def test_two_opposite_follows_started_at_the_same_moment_do_not_both_run(served, tmp_path) -> None:
    """--follow A→B and --follow B→A at once, each let to its "poured into" lock only once both got there (each has
    made today's check before the other takes that lock): at most one may run, the other exits 7. Today both run,
    and the call waiting in A is moved to B, then back to A."""
    org, support, billing, _ = three_queue_org()
    call = org.add_waiting_call(support, caller="+15550821")
    base_url = served(org)
    rendezvous = tmp_path / "rendezvous"
    rendezvous.mkdir()
    env = script_environment(org, base_url, RENDEZVOUS=str(rendezvous), TRANSFER_CALL_DIR=str(SCRIPT.parent))
    runs = {name: subprocess.Popen([sys.executable, "-c", AT_THE_LOCK, "--from-queue", source, "--queue-id", target,
                                    "--follow", "2s", "--yes", "--wait", "1"], env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
            for name, source, target in (("A→B", "Support", billing), ("B→A", "Billing Overflow", support))}
    try:
        wait_until(lambda: len(list(rendezvous.glob("at-lock-*"))) >= 2
                   or any(p.poll() is not None for p in runs.values()), 30)
        (rendezvous / "go").touch()
        results = {name: (process.wait(timeout=60), *process.communicate(timeout=30))
                   for name, process in runs.items()}
    finally:
        (rendezvous / "go").touch()
        for process in runs.values():
            if process.poll() is None:
                process.kill()
                process.communicate()
    codes = {name: code for name, (code, _, _) in results.items()}
    errs = {name: err for name, (_, _, err) in results.items()}

    assert len(transfers_of(org, call)) <= 1, (transfers_of(org, call), errs)  # not moved to B and back
    assert sorted(codes.values()) in ([0, 7], [7, 7]), (codes, errs)
    assert org.queue_of(call) in (support, billing)


# --- finding 2: an "unknown" line fed back ---------------------------------------------------------

def unknown_line(org: FakeOrg, run_inprocess, call: str, argv: list[str]) -> str:
    """Run argv so that the call's transfer is processed but its answer lost (503), and reading the call fails
    after it: the run cannot tell, and writes an "unknown" ("may have moved") line. The transfer is accepted,
    not applied yet (transfer_delay), so the leg it acted on is still live; recentTransfers does not list it
    (whether Genesys lists queue transfers there is unverified). The org is healthy again after."""
    org.show_recent_transfers = False
    org.transfer_delay = 600
    org.inject("POST", f"/conversations/{call}/participants/[^/]+/replace/queue", 503, process=True)
    org.when("POST", f"/conversations/{call}/participants/[^/]+/replace/queue",
             lambda o: o.inject("GET", f"/api/v2/conversations/{call}$", 503, times=None))
    result = run_inprocess(org, *argv, "--wait", "0.2", "--retry-budget", "1")
    assert result.code == 8, result.err
    assert f"unknown {call}" in result.out or '"status": "unknown"' in result.out, result.out
    org.clear_faults()
    return result.out


def age_the_journal(by: float) -> None:
    """Make every transfer this machine's journal holds `by` seconds older (as if that much time went by)."""
    folder = Path(os.environ["HOME"]) / ".cache" / "transfer_call"
    for journal in folder.glob("*.transfers"):
        lines = []
        for line in journal.read_text().splitlines():
            fields = line.split(" ")
            fields[3] = f"{float(fields[3]) - by:.0f}"
            lines.append(" ".join(fields))
        journal.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("where", ["another machine", "after the journal's hold"])
def test_an_unknown_line_fed_back_is_held_back_while_its_leg_is_live(run_inprocess, tmp_path, monkeypatch,
                                                                      where: str) -> None:
    """The earlier run's transfer was accepted (its answer lost: "unknown"), not applied yet: the leg it acted on is
    still live. A rerun on that line, where the journal cannot hold it back, must send nothing (exit 6)."""
    scenario = build_scenario()
    org, call = scenario.org, scenario.waiting_call
    [leg] = org.live_participants(call, "acd")
    lines = tmp_path / "results.txt"
    lines.write_text(unknown_line(org, run_inprocess, call, ["--conversation-id", call, "--queue-id",
                                                             scenario.billing]))
    assert [t["participantId"] for t in org.transfers] == [leg["id"]]
    posts = len(transfer_posts(org))
    if where == "another machine":
        monkeypatch.setenv("HOME", str(tmp_path / "another-machine"))
    else:
        age_the_journal(transfer_call.JOURNAL_WINDOW + 60)

    again = run_inprocess(org, "--conversations-file", str(lines), "--queue-id", scenario.billing, "--wait", "0.2")

    assert [t["participantId"] for t in org.transfers] == [leg["id"]], "a second transfer of the same leg accepted"
    assert len(transfer_posts(org)) == posts
    assert org.queue_of(call) == scenario.support  # still waiting where it was: the first transfer is pending
    assert again.code == 6, again.err


def test_an_unknown_line_whose_leg_is_gone_is_skipped_not_moved_again(run_inprocess, tmp_path, monkeypatch) -> None:
    """The other half of the rule: the "unknown" transfer was applied after all (the leg it acted on is gone), and the
    call was put back in Support since. A rerun on that line (another machine) must skip it, not move it again."""
    scenario = build_scenario()
    org, call = scenario.org, scenario.waiting_call
    lines = tmp_path / "results.txt"
    lines.write_text(unknown_line(org, run_inprocess, call, ["--conversation-id", call, "--queue-id",
                                                             scenario.billing]))
    with org.lock:  # that transfer applies now: the call lands in Billing Overflow...
        org._pending = [(0.0, transfer, entry) for _, transfer, entry in org._pending]
    [landed] = org.live_participants(call, "acd")
    assert landed["queueId"] == scenario.billing
    # ...then someone puts it back in Support (a new leg there)
    org._apply_transfer({"conversationId": call, "participantId": landed["id"], "queueId": scenario.support}, None)
    monkeypatch.setenv("HOME", str(tmp_path / "another-machine"))

    again = run_inprocess(org, "--conversations-file", str(lines), "--queue-id", scenario.billing, "--wait", "0.2")

    assert transfers_of(org, call) == [scenario.billing], "moved again though the earlier transfer landed"
    assert org.queue_of(call) == scenario.support
    assert again.code == 0, again.err
    assert again.out.startswith(f"skipped {call}"), again.out


def test_an_undo_s_unknown_line_fed_back_to_undo_elsewhere_is_not_sent_again(run_inprocess, tmp_path,
                                                                            monkeypatch) -> None:
    """An --undo whose transfer back was accepted but its answer lost writes "unknown" into the file it reads; that
    file given to --undo again on another machine must not send the transfer back a second time."""
    org, support, overflow, [call] = evacuation_org(1)
    moved = tmp_path / "moved.jsonl"
    assert run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--json", "--output",
                         str(moved)).code == 0
    assert org.queue_of(call) == overflow
    [leg] = org.live_participants(call, "acd")  # the leg in Overflow, which the undo replaces
    unknown_line(org, run_inprocess, call, ["--undo", str(moved), "--json", "--output", str(moved)])
    assert transfers_of(org, call) == [overflow, support]
    assert json.loads(moved.read_text().splitlines()[-1])["status"] == "unknown"
    monkeypatch.setenv("HOME", str(tmp_path / "another-machine"))

    again = run_inprocess(org, "--undo", str(moved), "--json", "--wait", "0.2")

    assert transfers_of(org, call) == [overflow, support], "the transfer back was sent a second time"
    assert [t["participantId"] for t in org.transfers].count(leg["id"]) == 1
    assert org.queue_of(call) == overflow  # the first undo's transfer is still pending
    assert again.code == 6, again.err


# --- finding 3: a change after a stop ---------------------------------------------------------------

def test_no_transfer_is_sent_after_the_output_file_cannot_be_written(run_inprocess, monkeypatch) -> None:
    """Two calls move with participant data (--attribute, written before each transfer), two at a time. The second
    call's worker is in the middle of its data write (held on its way to the org) when the first call's line cannot be
    written to --output (/dev/full): the run halts. That worker must not go on to send its transfer once its data
    write is answered (today it does)."""
    monkeypatch.setattr(transfer_call, "VERIFY_EVERY", 0.1)  # the moved first call is checked while the second waits
    org, support, overflow, (first, second) = evacuation_org(2)
    data = org.hold_requests("PATCH", f"/conversations/calls/{second}/participants/[^/]+/attributes", timeout=5)
    # The first call's transfer goes only once the second call's data write has come: its 202, then its line (which
    # fails), come while that write is held. The check of the moved first call comes after that line: then the
    # second call's write is let through (the hold's 5 s timeout lets it through anyway, a safety net).
    org.hold_requests("POST", f"/conversations/{first}/participants/[^/]+/replace/queue", timeout=5,
                      until=data.arrived)
    org.when("GET", r"/api/v2/analytics/conversations/details$", lambda o: data.release(), times=None)

    result = run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--attribute", "k=v",
                           "--concurrency", "2", "--output", "/dev/full", "--json", real_sleep=True)

    assert data.held == 1, "the second call's worker was not in the middle of its data write"
    assert transfers_of(org, first) == [overflow]  # accepted, then its line could not be written: the run halts
    assert "cannot write to the --output file" in result.err
    assert transfer_posts(org, second) == [], "a transfer was sent after the --output write failed"
    assert transfers_of(org, second) == [] and org.queue_of(second) == support
    assert result.code == 8, result.err  # something was changed (the first call moved): not exit 0, not "nothing"
