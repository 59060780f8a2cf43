"""Review repro: two single-call moves in opposite directions (call x S->T, call y T->S) by two operators at the
same time: neither can move the other's call, yet the second is refused with exit 7."""
from __future__ import annotations

from conftest import run_script
from test_findings_runs import three_queue_org, transfers_of
from test_operations import start, wait_until


def while_its_transfer_is_held(served, org, call: str, first: list[str], second: list[str]):
    """Run `second` while the run of `first` has its transfer of `call` in flight (held by the org); (that second
    run, the first run's stderr)."""
    hold = org.hold_requests("POST", f"/conversations/{call}/participants/[^/]+/replace/queue", timeout=30)
    base_url = served(org)
    process = start(base_url, org, *first)
    try:
        wait_until(lambda: hold.arrived.is_set() or process.poll() is not None, 30)
        assert process.poll() is None, process.communicate()
        result = run_script(base_url, org, *second, timeout=30)
    finally:
        hold.release()
        _, first_err = process.communicate(timeout=60)
    return result, first_err


def test_two_opposite_single_call_moves_both_run(served) -> None:
    org, support, billing, _ = three_queue_org()
    x, y = org.add_waiting_call(support, caller="+15550901"), org.add_waiting_call(billing, caller="+15550902")
    second, first_err = while_its_transfer_is_held(served, org, x, ["--conversation-id", x, "--queue-id", billing,
                                                                    "--wait", "2"],
                                                   ["--conversation-id", y, "--queue-id", support, "--wait", "2"])
    assert transfers_of(org, x) == [billing], first_err
    assert second.code == 0 and transfers_of(org, y) == [support], (second.code, second.err)


def test_an_in_place_run_started_while_a_move_into_its_queue_runs_is_not_refused(served) -> None:
    """A second review: a run that changes calls in place claims no queue, whichever run starts first."""
    org, support, billing, _ = three_queue_org()
    x = org.add_waiting_call(billing, caller="+15550921")
    org.add_waiting_call(support, caller="+15550922")
    in_place, _ = while_its_transfer_is_held(served, org, x, ["--conversation-id", x, "--queue-id", support, "--wait",
                                                              "2"], ["--from-queue", "Support", "--priority", "50",
                                                                     "--yes"])
    assert in_place.code == 0, (in_place.code, in_place.err)


def test_a_move_into_a_queue_whose_calls_are_changed_in_place_is_not_refused(served) -> None:
    """An in-place --follow (raise the priority of what arrives in Support) takes no call out of Support, yet it
    holds 'calls taken from queue Support': a move of a call into Support is refused (exit 7, 'would be moved on')."""
    from test_findings_runs import following, stop_process
    org, support, billing, _ = three_queue_org()
    call = org.add_waiting_call(billing, caller="+15550911")
    base_url = served(org)
    in_place = start(base_url, org, "--from-queue", "Support", "--priority", "50", "--follow", "60s", "--yes")
    try:
        wait_until(lambda: following(org, support) or in_place.poll() is not None, 30)
        assert in_place.poll() is None, in_place.communicate()
        into = run_script(base_url, org, "--conversation-id", call, "--queue-id", support, "--wait", "2", timeout=30)
    finally:
        _, err = stop_process(in_place)
    print(into.err)
    assert into.code == 0 and transfers_of(org, call) == [support], (into.code, into.err)


def test_parallel_single_call_moves_same_direction_are_not_refused(served) -> None:
    """A runbook moving N named calls S->T in parallel (xargs -P): each run probes 'calls poured into S' by taking it
    alone for an instant; a run whose probe meets another run's probe names 'another run' and exits 7."""
    org, support, billing, _ = three_queue_org()
    calls = [org.add_waiting_call(support, caller=f"+1555093{i:02d}") for i in range(24)]
    base_url = served(org)
    runs = [start(base_url, org, "--conversation-id", c, "--queue-id", billing, "--wait", "0") for c in calls]
    results = [(p.wait(timeout=120), p.communicate()[1]) for p in runs]
    busy = [err for code, err in results if code == 7]
    print(len(busy), busy[:2])
    assert not busy, busy[:2]
