"""A second review's repro: a run that changes calls in place claims no queue, whichever run starts first."""

from conftest import run_script
from test_findings_runs import three_queue_org, transfers_of
from test_operations import start, wait_until


def test_in_place_run_started_while_a_move_into_its_queue_runs_is_not_refused(served) -> None:
    """The reverse order of test_a_move_into_a_queue_whose_calls_are_changed_in_place_is_not_refused."""
    org, support, billing, _ = three_queue_org()
    x = org.add_waiting_call(billing, caller="+15550921")
    y = org.add_waiting_call(support, caller="+15550922")
    hold = org.hold_requests("POST", f"/conversations/{x}/participants/[^/]+/replace/queue", timeout=30)
    base_url = served(org)
    first = start(base_url, org, "--conversation-id", x, "--queue-id", support, "--wait", "2")
    try:
        wait_until(lambda: hold.arrived.is_set() or first.poll() is not None, 30)
        assert first.poll() is None, first.communicate()
        in_place = run_script(base_url, org, "--from-queue", "Support", "--priority", "50", "--yes", timeout=30)
    finally:
        hold.release()
        first.communicate(timeout=60)
    print(in_place.code, in_place.err)
    assert in_place.code == 0, (in_place.code, in_place.err)
