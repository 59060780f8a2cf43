"""Callbacks (issue 16, part 3): moved by their own endpoints, verified like calls, counted by media.

A callback waiting in a queue (routed) is replaced through POST /api/v2/conversations/callbacks/
{id}/participants/{id}/replace; a scheduled one (not offered yet) is changed with PATCH
/api/v2/conversations/callbacks. The voice replace/queue is never used for them.
"""

from __future__ import annotations

import collections

from conftest import Scenario, final_records
from test_bulk import evacuation_org


def test_a_queue_of_calls_and_callbacks_moves_each_by_its_own_endpoint(run_inprocess) -> None:
    org, support, overflow, calls = evacuation_org(3)
    routed = [org.add_waiting_callback(support, caller=f"+1555010{n}") for n in range(2)]
    scheduled = org.add_waiting_callback(support, scheduled=True)

    result = run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--media", "voice,callback",
                           "--json")

    assert result.code == 0, result.err
    every = [*calls, *routed, scheduled]
    assert all(org.queue_of(c) == overflow for c in every)
    assert collections.Counter(t["conversationId"] for t in org.transfers) == collections.Counter(every)
    voice_posts = {r["path"].split("/")[4] for r in org.sent("POST", "/replace/queue")}
    callback_posts = {r["path"].split("/")[5] for r in org.sent("POST", "/api/v2/conversations/callbacks/")}
    assert voice_posts == set(calls) and callback_posts == set(routed)
    assert [r["body"] for r in org.sent("PATCH", "/api/v2/conversations/callbacks")
            if r["path"] == "/api/v2/conversations/callbacks"] == [{"conversationId": scheduled, "queueId": overflow}]
    records = {r["conversationId"]: r for r in final_records(result.out)}
    assert {c: records[c]["mediaType"] for c in every} == {**dict.fromkeys(calls, "voice"),
                                                          **dict.fromkeys([*routed, scheduled], "callback")}
    assert all(r["status"] == "transferred" and r["moved"] == "yes" and r["verified"] for r in records.values())
    assert "moved 6 (6 verified; 3 callbacks, 3 voice)" in result.err


def test_without_media_callbacks_stay_where_they_are(run_inprocess) -> None:
    org, support, overflow, calls = evacuation_org(2)
    callback = org.add_waiting_callback(support)

    result = run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow)

    assert result.code == 0, result.err
    assert org.queue_of(callback) == support and all(org.queue_of(c) == overflow for c in calls)


def test_a_callback_named_by_conversation_id_moves_by_its_own_endpoint(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org
    callback = org.add_waiting_callback(scenario.support)
    [leg] = org.live_participants(callback, "acd")

    result = run_inprocess(org, "--conversation-id", callback, "--queue-id", scenario.billing, "--priority", "9",
                           "--json")

    assert result.code == 0, result.err
    [post] = org.sent("POST", "/api/v2/conversations/callbacks/")
    assert post["path"] == f"/api/v2/conversations/callbacks/{callback}/participants/{leg['id']}/replace"
    assert post["body"] == {"queueId": scenario.billing}
    assert org.sent("POST", "/replace/queue") == []
    assert org.queue_of(callback) == scenario.billing and org.routing_of(callback)["priority"] == 9
    [record] = final_records(result.out)
    assert (record["mediaType"], record["status"], record["routing"]) == ("callback", "transferred", "applied")


def test_a_scheduled_callback_named_by_id_is_changed_not_replaced_and_a_rerun_skips_it(scenario: Scenario,
                                                                                     run_inprocess) -> None:
    org = scenario.org
    callback = org.add_waiting_callback(scenario.support, scheduled=True)
    argv = ("--conversation-id", callback, "--queue-id", scenario.billing, "--json")

    result = run_inprocess(org, *argv)
    again = run_inprocess(org, *argv)

    assert result.code == 0, result.err
    assert org.queue_of(callback) == scenario.billing and len(org.callback_changes) == 1
    assert org.sent("POST", "/api/v2/conversations/callbacks/") == [] and org.sent("POST", "/replace/queue") == []
    assert again.code == 0 and final_records(again.out)[0]["status"] == "skipped"


def test_a_dry_run_names_each_callback_s_endpoint(run_inprocess) -> None:
    org, support, overflow, calls = evacuation_org(0)
    routed, scheduled = org.add_waiting_callback(support), org.add_waiting_callback(support, scheduled=True)

    result = run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--media", "callback", "--dry-run",
                           "--json")

    assert result.code == 0, result.err
    requests = {r["conversationId"]: r["requests"] for r in final_records(result.out)}
    assert requests[scheduled] == [f'PATCH /api/v2/conversations/callbacks {{"conversationId": "{scheduled}", '
                                   f'"queueId": "{overflow}"}}']
    assert requests[routed][0].startswith(f"POST /api/v2/conversations/callbacks/{routed}/participants/")
    text = run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--media", "callback", "--dry-run")
    assert "(scheduled callback): would send PATCH" in text.out and "(callback, waiting " in text.out
    assert org.transfers == []


def test_check_with_callbacks_names_their_permissions(run_inprocess) -> None:
    org, support, overflow, calls = evacuation_org(1)

    result = run_inprocess(org, "--check", "--from-queue", "Support", "--queue-id", overflow, "--media",
                           "voice,callback")

    assert result.code == 0, result.err
    assert "conversation:callback:edit" in result.out and "conversation:communication:blindTransfer " in result.out


def test_media_is_checked_and_goes_with_from_queue(scenario: Scenario, run_inprocess) -> None:
    bad = run_inprocess(scenario.org, "--from-queue", "Support", "--queue-id", scenario.billing, "--media", "email")
    alone = run_inprocess(scenario.org, "--conversation-id", scenario.waiting_call, "--queue-id", scenario.billing,
                          "--media", "callback")

    assert bad.code == 2 and "--media 'email' must list voice and/or callback" in bad.err
    assert alone.code == 2 and "--media goes with --from-queue" in alone.err
    assert scenario.org.requests == []


def test_an_undo_puts_callbacks_back_by_their_own_endpoints(run_inprocess, tmp_path) -> None:
    org, support, overflow, calls = evacuation_org(1)
    routed, scheduled = org.add_waiting_callback(support), org.add_waiting_callback(support, scheduled=True)
    moved = tmp_path / "moved.jsonl"
    assert run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--media", "voice,callback",
                         "--output", str(moved)).code == 0

    undo = run_inprocess(org, "--undo", str(moved), "--json")

    assert undo.code == 0, undo.err
    assert all(org.queue_of(c) == support for c in (*calls, routed, scheduled))
    assert len(org.sent("POST", "/api/v2/conversations/callbacks/")) == 2  # routed: there and back
    assert len(org.callback_changes) == 2  # scheduled: there and back


# --- found by the review ------------------------------------------------------------------------

def offer(org, conversation_id: str) -> None:
    """The scheduled callback comes due: its queue leg is offered to agents (a routed callback now)."""
    import fake_org

    for leg in org.live_participants(conversation_id, "acd"):
        leg["callbacks"][0]["state"] = fake_org.CALLBACK_ROUTED_STATE
        leg["callbacks"][0].pop("callbackScheduledTime", None)


def test_a_scheduled_callback_s_move_whose_answer_was_lost_is_a_move_not_a_failure(scenario: Scenario,
                                                                                   run_inprocess) -> None:
    org = scenario.org
    callback = org.add_waiting_callback(scenario.support, scheduled=True)
    org.inject("PATCH", "^/api/v2/conversations/callbacks$", 503, process=True)

    result = run_inprocess(org, "--conversation-id", callback, "--queue-id", scenario.billing, "--json")

    assert result.code == 0, result.err
    [record] = final_records(result.out)
    assert (record["status"], record["moved"], record["mediaType"]) == ("transferred", "yes", "callback")
    assert len(org.callback_changes) == 1 and org.queue_of(callback) == scenario.billing


def test_a_scheduled_callback_answered_in_its_new_queue_counts_as_verified(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org
    callback = org.add_waiting_callback(scenario.support, scheduled=True)
    org.when("PATCH", "^/api/v2/conversations/callbacks$",
             lambda o: o.at(0, lambda o: (offer(o, callback), o.answer(callback, scenario.agent))))

    result = run_inprocess(org, "--conversation-id", callback, "--queue-id", scenario.billing, "--json")

    assert result.code == 0, result.err
    assert final_records(result.out)[0]["verified"] is True


def test_a_scheduled_callback_offered_before_its_move_is_moved_as_a_routed_one(scenario: Scenario,
                                                                              run_inprocess) -> None:
    org = scenario.org
    callback = org.add_waiting_callback(scenario.support, scheduled=True)
    org.when("PATCH", "^/api/v2/conversations/callbacks$", lambda o: offer(o, callback))  # just before it lands

    result = run_inprocess(org, "--conversation-id", callback, "--queue-id", scenario.billing, "--json")

    assert result.code == 0, result.err
    assert org.callback_changes == [] and len(org.sent("POST", "/api/v2/conversations/callbacks/")) == 1
    assert org.queue_of(callback) == scenario.billing


def test_lines_read_back_keep_the_media_they_named(run_inprocess, tmp_path) -> None:
    org, support, overflow, calls = evacuation_org(0)
    callback = org.add_waiting_callback(support)
    moved = tmp_path / "moved.jsonl"
    assert run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--media", "callback", "--json",
                         "--output", str(moved)).code == 0

    again = run_inprocess(org, "--conversations-file", str(moved), "--queue-id", overflow, "--json")

    assert again.code == 0, again.err
    [record] = final_records(again.out)
    assert (record["conversationId"], record["status"], record["mediaType"]) == (callback, "skipped", "callback")
