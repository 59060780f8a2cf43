"""A second review's repros: a call held back right before its transfer after its participant data was written
is reported at once (a --follow window does not take it back), and the exit code counts it as changed."""

import json
from test_bulk import evacuation_org
from test_review_held import note_sent_by_another_run


def test_follow_call_held_after_its_data_was_written_loses_its_line(run_inprocess):
    """Another run journals a transfer of X while this run writes X's participant data; then X leaves the queue
    (that run's transfer applies). This run wrote data on X, yet X gets no result line at all."""
    org, support, overflow, (x,) = evacuation_org(1)
    def other_run(o):
        note_sent_by_another_run(o, x)
    org.when("PATCH", f"/conversations/calls/{x}/participants/[^/]+/attributes", other_run)
    org.at(1.0, lambda o: o.end_call(x))
    result = run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--yes", "--json",
                           "--attribute", "reason=overflow", "--follow", "3s", real_sleep=True)
    print(result.out); print(result.err)
    written = [c["conversationId"] for c in org.attribute_changes]
    assert x in written  # this run changed X
    lines = [json.loads(l) for l in result.out.splitlines() if l.startswith("{") and x in l]
    assert lines, ("a call whose participant data this run wrote has no result line", result.code)


def test_bulk_call_held_after_its_data_was_written_says_nothing_was_sent(run_inprocess):
    org, support, overflow, (x, y) = evacuation_org(2)
    org.when("PATCH", f"/conversations/calls/{x}/participants/[^/]+/attributes",
             lambda o: note_sent_by_another_run(o, x))
    result = run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--yes", "--json",
                           "--attribute", "reason=overflow", "--concurrency", "1")
    print(result.out); print(result.err)
    written = [c["conversationId"] for c in org.attribute_changes]
    rec = next(json.loads(l) for l in result.out.splitlines() if x in l)
    assert x in written
    assert "nothing was sent" not in rec["reason"], rec


def test_follow_exit_code_says_nothing_changed_though_data_was_written(run_inprocess):
    org, support, overflow, (x, y) = evacuation_org(2)
    org.when("PATCH", f"/conversations/calls/{x}/participants/[^/]+/attributes", lambda o: note_sent_by_another_run(o, x))
    org.inject("PATCH", f"/conversations/calls/{y}/participants/[^/]+/attributes", 400, times=None)
    org.at(1.0, lambda o: o.end_call(x))
    result = run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--yes", "--json",
                           "--attribute", "reason=overflow", "--follow", "3s", "--concurrency", "1", real_sleep=True)
    print(result.out); print(result.err)
    assert x in [c["conversationId"] for c in org.attribute_changes]
    assert result.code == 8, (result.code, "exit code says nothing was changed, yet x's participant data was written")
