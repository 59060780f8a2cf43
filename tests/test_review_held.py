"""Review repro: a call held back right before its transfer (another run's journal entry appeared since the calls
were picked) halts the whole run: the calls after it are never sent."""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import time
from pathlib import Path

import transfer_call
from test_bulk import evacuation_org


def note_sent_by_another_run(org, conversation_id: str, base_url: str = "https://api.fake.test") -> None:
    """Write this machine's journal line for the call's queue leg, as another run's remember_transfer would."""
    conversation = org.conversations[conversation_id]
    [leg] = org.live_participants(conversation_id, "acd")
    start = int(dt.datetime.fromisoformat(conversation["startTime"].replace("Z", "+00:00")).timestamp())
    day = dt.datetime.now(dt.timezone.utc).date()
    folder = Path(os.environ["HOME"]) / ".cache" / "transfer_call"
    folder.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(f"{base_url} transfers {day}".encode()).hexdigest()[:24] + ".transfers"
    with open(folder / name, "a") as journal:
        journal.write(f"{conversation_id} {leg['id']} {start} {time.time():.0f} sent {transfer_call.boot_id()} "
                      f"{transfer_call.boot_clock():.0f}\n")


def test_one_call_held_at_its_transfer_does_not_stop_the_others(run_inprocess) -> None:
    org, support, overflow, (first, second, third) = evacuation_org(3)
    # While the run sends the first call's transfer, another run on this machine sends one for the second call.
    org.when("POST", f"/conversations/{first}/participants/[^/]+/replace/queue",
             lambda o: note_sent_by_another_run(o, second))

    result = run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--yes", "--concurrency", "1")
    print(result.out)
    print(result.err)
    moved = [t["conversationId"] for t in org.transfers]
    assert second not in moved  # held back: right
    assert third in moved, ("the third call, with nothing pending, was never sent", result.out, result.err)


def test_control_same_hold_at_selection_time_does_not_stop_the_others(run_inprocess) -> None:
    org, support, overflow, (first, second, third) = evacuation_org(3)
    note_sent_by_another_run(org, second)
    result = run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--yes", "--concurrency", "1")
    moved = [t["conversationId"] for t in org.transfers]
    assert second not in moved and first in moved and third in moved, result.err
    assert result.code == 8, result.err  # others moved; the held one not


def test_a_follow_window_is_not_ended_by_one_call_held_at_its_transfer(run_inprocess) -> None:
    org, support, overflow, (first, second) = evacuation_org(2)
    org.when("POST", f"/conversations/{first}/participants/[^/]+/replace/queue",
             lambda o: note_sent_by_another_run(o, second))
    later = []
    org.at(1.5, lambda o: later.append(o.add_waiting_call(support, caller="+15550999")))
    started = time.monotonic()
    result = run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--yes", "--concurrency", "1",
                           "--follow", "4s", real_sleep=True)
    took = time.monotonic() - started
    print(result.out, result.err, took)
    moved = [t["conversationId"] for t in org.transfers]
    assert later and later[0] in moved, ("a call that arrived later in the window was not moved", took, result.err)


def test_participant_data_is_not_written_on_a_call_held_at_its_transfer(run_inprocess) -> None:
    """The hold right before the transfer comes after the participant data write: the held call is changed anyway,
    and its line says 'nothing was sent'."""
    org, support, overflow, (first, second) = evacuation_org(2)
    org.when("POST", f"/conversations/{first}/participants/[^/]+/replace/queue",
             lambda o: note_sent_by_another_run(o, second))
    result = run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--yes", "--concurrency", "1",
                           "--attribute", "reason=overflow")
    print(result.out, result.err)
    written = [c["conversationId"] for c in org.attribute_changes]
    line = next(l for l in result.out.splitlines() if second in l)
    assert second not in written, ("participant data written on a call then held back", line)


def test_an_in_place_unknown_line_fed_to_a_move_is_not_held_as_a_lost_transfer(run_inprocess, tmp_path) -> None:
    """An in-place run's 'unknown' line (a routing PATCH whose answer was lost; no transfer at all) given to
    --conversations-file with a target: nothing was ever transferred, yet the call is held back (exit 6) for as long
    as it waits, as 'the earlier run's transfer, whose answer was lost'."""
    org, support, overflow, [call] = evacuation_org(1)
    org.inject("PATCH", f"/routing/conversations/{call}", 503, process=True, times=None)
    first = run_inprocess(org, "--conversation-id", call, "--priority", "5", "--retry-budget", "1")
    print(first.out, first.err)
    assert first.out.startswith(f"unknown {call}"), first.out
    org.clear_faults()
    lines = tmp_path / "lines.txt"
    lines.write_text(first.out)
    again = run_inprocess(org, "--conversations-file", str(lines), "--queue-id", overflow)
    print(again.out, again.err)
    assert org.queue_of(call) == overflow, ("never moved", again.code, again.out)
