"""One call, in-process through httpx.MockTransport: what was sent, what the org looks like afterwards."""

from __future__ import annotations

import time

import pytest

from conftest import json_lines, Scenario, final_records
from fake_org import FakeOrg

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def transfer_posts(org: FakeOrg) -> list[dict]:
    return org.sent("POST", "/replace/queue")


def assert_no_secret(org: FakeOrg, *texts: str) -> None:
    for text in texts:
        assert org.client_secret not in text
        for token in org.issued_tokens:
            assert token not in text


def test_user_id_moves_the_agents_call_once_and_verifies(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org
    agent_leg = org.live_participants(scenario.agent_call, "agent")[0]

    result = run_inprocess(org, "--user-id", scenario.agent, "--queue-id", scenario.billing)

    assert result.code == 0, result.err
    subject = (f"transferred {scenario.agent_call} participant {agent_leg['id']} from queue {scenario.support} "
               f"to queue {scenario.billing}")
    assert result.out == f"{subject} (moved, verifying)\n{subject} (moved, verified)\n"  # moved, then seen there
    [post] = transfer_posts(org)
    assert post["path"] == f"/api/v2/conversations/{scenario.agent_call}/participants/{agent_leg['id']}/replace/queue"
    assert post["body"] == {"queueId": scenario.billing}
    assert org.transfers == [{"conversationId": scenario.agent_call, "participantId": agent_leg["id"],
                              "queueId": scenario.billing}]
    assert org.live_participants(scenario.agent_call, "agent") == []
    assert org.queue_of(scenario.agent_call) == scenario.billing
    assert org.queue_of(scenario.waiting_call) == scenario.support  # the other call was not touched
    assert_no_secret(org, result.out, result.err)


def test_details_query_asks_for_the_agents_open_voice_segments(scenario: Scenario, run_inprocess) -> None:
    run_inprocess(scenario.org, "--user-id", scenario.agent, "--queue-id", scenario.billing)

    [query] = [r["body"] for r in scenario.org.sent("POST", "/analytics/conversations/details/query")]
    predicates = query["segmentFilters"][0]["predicates"]
    assert {"type": "dimension", "dimension": "userId", "operator": "matches", "value": scenario.agent} in predicates
    assert {"type": "dimension", "dimension": "mediaType", "operator": "matches", "value": "voice"} in predicates
    assert {"type": "dimension", "dimension": "segmentEnd", "operator": "notExists"} in predicates
    assert query["conversationFilters"][0]["predicates"] == [
        {"type": "dimension", "dimension": "conversationEnd", "operator": "notExists"}]
    assert (query["order"], query["orderBy"]) == ("desc", "conversationStart")


def test_conversation_id_moves_a_waiting_call_by_its_acd_participant(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org
    acd = org.live_participants(scenario.waiting_call, "acd")[0]

    result = run_inprocess(org, "--conversation-id", scenario.waiting_call, "--queue-name", "billing overflow",
                           "--json")

    assert result.code == 0, result.err
    first, record = json_lines(result.out)
    assert (first["status"], first["moved"], first["verified"], first["final"]) == ("transferred", "yes", False, False)
    assert (record["status"], record["moved"], record["verified"], record["final"]) == ("transferred", "yes", True, True)
    assert (record["participantId"], record["fromQueueId"], record["queueId"], record["queueName"]) == (
        acd["id"], scenario.support, scenario.billing, "Billing Overflow")
    assert [t["participantId"] for t in org.transfers] == [acd["id"]]
    assert org.queue_of(scenario.waiting_call) == scenario.billing
    assert org.sent("GET", "/routing/queues")[0]["query"]["name"] == "billing overflow"


def test_conversation_id_prefers_the_connected_agent_over_older_legs(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org
    agent_leg = org.live_participants(scenario.agent_call, "agent")[0]

    result = run_inprocess(org, "--conversation-id", scenario.agent_call, "--queue-id", scenario.billing)

    assert result.code == 0, result.err
    assert [t["participantId"] for t in org.transfers] == [agent_leg["id"]]


def test_user_email_is_resolved_by_exact_search(scenario: Scenario, run_inprocess) -> None:
    result = run_inprocess(scenario.org, "--user-email", "ADA@example.com", "--queue-id", scenario.billing)

    assert result.code == 0, result.err
    [search] = scenario.org.sent("POST", "/users/search")
    assert search["body"] == {"query": [{"type": "EXACT", "fields": ["email"], "value": "ADA@example.com"}]}
    assert scenario.org.queue_of(scenario.agent_call) == scenario.billing


def test_dry_run_prints_the_request_and_changes_nothing(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org
    agent_leg = org.live_participants(scenario.agent_call, "agent")[0]

    result = run_inprocess(org, "--user-id", scenario.agent, "--queue-id", scenario.billing, "--dry-run")

    assert result.code == 0, result.err
    path = f"/api/v2/conversations/{scenario.agent_call}/participants/{agent_leg['id']}/replace/queue"
    assert result.out == (f"dry-run {scenario.agent_call} participant {agent_leg['id']} from queue {scenario.support} "
                          f"to queue {scenario.billing}: "
                          f'would send POST {path} {{"queueId": "{scenario.billing}"}}\n')
    assert transfer_posts(org) == [] and org.transfers == []
    assert org.sent("GET", f"/routing/queues/{scenario.billing}")  # the target was checked


def test_several_live_calls_take_the_connected_unheld_newest_and_name_the_rest(scenario: Scenario,
                                                                              run_inprocess) -> None:
    org = scenario.org
    held_newer = org.add_agent_call(scenario.agent, scenario.support)
    org.hold(held_newer)

    result = run_inprocess(org, "--user-id", scenario.agent, "--queue-id", scenario.billing)

    assert result.code == 0, result.err
    assert [t["conversationId"] for t in org.transfers] == [scenario.agent_call]
    assert held_newer in result.err and "has 1 other live call, not moved" in result.err


def test_a_consult_moves_the_connected_agent_leg_not_the_held_first_one(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org
    [first] = org.live_participants(scenario.agent_call, "agent")
    org.hold(scenario.agent_call)  # the first agent holds the customer and consults a colleague
    colleague = org.add_user("Cleo Colleague", "cleo@example.com")
    consulted = org.add_agent_leg(scenario.agent_call, colleague)

    result = run_inprocess(org, "--conversation-id", scenario.agent_call, "--queue-id", scenario.billing, "--json")

    assert result.code == 0, result.err
    assert final_records(result.out)[0]["participantId"] == consulted
    assert [t["participantId"] for t in org.transfers] == [consulted]
    assert first["id"] not in [t["participantId"] for t in org.transfers]


def test_among_connected_agent_legs_the_most_recently_started_moves(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org
    colleague = org.add_user("Cleo Colleague", "cleo@example.com")
    older = org.add_agent_leg(scenario.agent_call, colleague, started="2020-01-01T00:00:00.000Z")
    [newest] = [p["id"] for p in org.live_participants(scenario.agent_call, "agent") if p["id"] != older]

    result = run_inprocess(org, "--conversation-id", scenario.agent_call, "--queue-id", scenario.billing)

    assert result.code == 0, result.err
    assert [t["participantId"] for t in org.transfers] == [newest]


def test_a_held_agent_leg_moves_when_no_other_is_connected(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org
    [held] = org.live_participants(scenario.agent_call, "agent")
    org.hold(scenario.agent_call)

    result = run_inprocess(org, "--conversation-id", scenario.agent_call, "--queue-id", scenario.billing)

    assert result.code == 0, result.err
    assert [t["participantId"] for t in org.transfers] == [held["id"]]


def test_rerunning_a_move_already_made_is_skipped_with_the_reason_and_exit_0(scenario: Scenario,
                                                                            run_inprocess) -> None:
    org = scenario.org

    result = run_inprocess(org, "--conversation-id", scenario.waiting_call, "--queue-name", "support")

    assert result.code == 0, result.err
    assert result.out.startswith(f"skipped {scenario.waiting_call} ")
    assert "already waiting in queue Support; nothing to do" in result.out
    assert "error:" not in result.err and org.sent("POST", "/replace/queue") == []


def test_the_org_acted_on_is_named_before_anything_is_sent(scenario: Scenario, run_inprocess) -> None:
    result = run_inprocess(scenario.org, "--user-id", scenario.agent, "--queue-id", scenario.billing, "--dry-run")

    first = result.err.splitlines()[0]
    assert first == f"transfer_call: org: https://api.fake.test, OAuth client {scenario.org.client_id}"


def test_analytics_lag_is_retried_briefly(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org
    org.hidden_from_analytics.add(scenario.agent_call)
    queries = []
    org.when("POST", "/details/query", lambda o: queries.append(1) or (
        len(queries) == 2 and o.hidden_from_analytics.clear()), times=None)

    result = run_inprocess(org, "--user-id", scenario.agent, "--queue-id", scenario.billing)

    assert result.code == 0, result.err
    assert len(queries) == 2 and len(org.transfers) == 1


def test_a_call_analytics_still_lists_after_it_ended_is_skipped(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org
    org.end_call(scenario.agent_call)
    org.stale_in_analytics.add(scenario.agent_call)

    result = run_inprocess(org, "--user-id", scenario.agent, "--queue-id", scenario.billing)

    assert result.code == 4
    assert "has no connected voice call" in result.err
    assert org.transfers == []


def test_token_expiring_mid_run_is_renewed_once(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org
    org.when("POST", "/replace/queue", FakeOrg.expire_tokens)

    result = run_inprocess(org, "--user-id", scenario.agent, "--queue-id", scenario.billing)

    assert result.code == 0, result.err
    assert len(org.issued_tokens) == 2 and len(org.transfers) == 1


def test_transfer_processed_but_answered_504_is_not_sent_twice(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org
    org.inject("POST", "/replace/queue", 504, process=True)

    result = run_inprocess(org, "--user-id", scenario.agent, "--queue-id", scenario.billing, "--json")

    assert result.code == 0, result.err
    assert len(transfer_posts(org)) == 1 and len(org.transfers) == 1
    assert org.queue_of(scenario.agent_call) == scenario.billing
    assert "watching the call before deciding anything" in result.err
    assert final_records(result.out)[0]["moved"] == "yes"


def test_transfer_processed_late_after_a_504_is_not_sent_twice(run_inprocess) -> None:
    org = FakeOrg(transfer_delay=0.03)
    support, billing = org.add_queue("Support"), org.add_queue("Billing")
    call = org.add_waiting_call(support)
    org.inject("POST", "/replace/queue", 504, process=True)

    result = run_inprocess(org, "--conversation-id", call, "--queue-id", billing)

    assert result.code == 0, result.err
    assert len(org.transfers) == 1 and org.queue_of(call) == billing


def test_transfer_answered_503_without_processing_is_sent_again_once(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org
    org.inject("POST", "/replace/queue", 503)

    result = run_inprocess(org, "--user-id", scenario.agent, "--queue-id", scenario.billing, "--wait", "0.3")

    assert result.code == 0, result.err  # watched for --wait: still on the agent, nothing pending, so sent again
    assert len(transfer_posts(org)) == 2 and len(org.transfers) == 1
    assert org.queue_of(scenario.agent_call) == scenario.billing


def test_transfer_that_times_out_is_checked_before_anything_else(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org
    org.inject("POST", "/replace/queue", process=True, action="timeout")

    result = run_inprocess(org, "--user-id", scenario.agent, "--queue-id", scenario.billing)

    assert result.code == 0, result.err
    assert len(org.transfers) == 1


def test_transient_read_errors_are_retried_with_backoff(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org
    org.inject("POST", "/details/query", 503, times=2)
    org.inject("GET", "/api/v2/conversations/", action="drop")

    result = run_inprocess(org, "--user-id", scenario.agent, "--queue-id", scenario.billing)

    assert result.code == 0, result.err
    assert len(run_inprocess.sleeps) == 3 and all(0 < s <= 16 for s in run_inprocess.sleeps)
    assert len(org.transfers) == 1


def test_429_waits_retry_after_and_resends(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org
    org.inject("POST", "/replace/queue", 429, retry_after=3, body={"status": 429, "code": "too.many.requests.retry.after"})

    result = run_inprocess(org, "--user-id", scenario.agent, "--queue-id", scenario.billing)

    assert result.code == 0, result.err
    assert run_inprocess.sleeps == [3.0]
    assert len(transfer_posts(org)) == 2 and len(org.transfers) == 1


def test_verification_reports_a_call_that_ended_while_moving(run_inprocess) -> None:
    org = FakeOrg(transfer_delay=60)
    support, billing = org.add_queue("Support"), org.add_queue("Billing")
    call = org.add_waiting_call(support)
    sent = []
    org.when("POST", "/replace/queue", lambda o: sent.append(1))
    org.when("GET", f"/conversations/{call}", lambda o: sent and o.end_call(call), times=None)

    result = run_inprocess(org, "--conversation-id", call, "--queue-id", billing, "--json")

    assert result.code == 0, result.err  # accepted, then the caller hung up: nothing is left to do
    [record] = final_records(result.out)
    assert (record["status"], record["moved"], record["verified"]) == ("transferred", "yes", False)
    assert "the call ended before it was seen in queue" in record["reason"]
    assert len(org.transfers) == 1


# --- the failure table: each user-visible failure → exit code and a message naming the fix ----

def ambiguous(org: FakeOrg) -> None:
    org.add_queue("Billing Overflow")


def without(permission: str):
    def remove(org: FakeOrg) -> None:
        org.permissions.discard(permission)
    return remove


def ends_before_transfer(org: FakeOrg) -> None:
    call = next(iter(org.conversations))
    org.when("POST", "/replace/queue", lambda o: o.end_call(call))


def storm(org: FakeOrg) -> None:
    org.inject("GET", "/api/v2/conversations/", 429, times=None, retry_after=5,
               body={"status": 429, "code": "too.many.requests.retry.after", "message": "Rate limit exceeded"})


def gateway_errors(org: FakeOrg) -> None:
    org.inject("POST", "/details/query", 502, times=None)


def never_lands(org: FakeOrg) -> None:
    org.transfer_delay = 3600


FAILURES = [
    # (name, change to the org, argv template, env, exit code, message fragments)
    ("bad secret", None, ["--user-id", "{agent}", "--queue-id", "{billing}"],
     {"GENESYS_CLIENT_SECRET": "wrong"}, 3, ["authentication failed", "GENESYS_CLIENT_SECRET"]),
    ("unknown client", None, ["--user-id", "{agent}", "--queue-id", "{billing}"],
     {"GENESYS_CLIENT_ID": "0badc0de-0000-4000-8000-000000000000"}, 3, ["authentication failed", "GENESYS_CLIENT_ID"]),
    ("missing view permission", without("conversation:communication:view"),
     ["--user-id", "{agent}", "--queue-id", "{billing}"], {}, 3,
     ["missing permission conversation:communication:view", "OAuth client's role"]),
    ("missing transfer permission", without("conversation:communication:blindTransferQueue"),
     ["--user-id", "{agent}", "--queue-id", "{billing}"], {}, 3,
     ["conversation:communication:blindTransfer", "OAuth client's role"]),
    ("unknown queue id", None, ["--user-id", "{agent}", "--queue-id", UNKNOWN_ID], {}, 2,
     ["does not exist or is not visible", "--queue-id"]),
    ("unknown queue name", None, ["--user-id", "{agent}", "--queue-name", "Nope"], {}, 2,
     ["no queue named 'Nope'", "divisions"]),
    ("ambiguous queue name", ambiguous, ["--user-id", "{agent}", "--queue-name", "Billing Overflow"], {}, 2,
     ["2 queues are named", "give the id instead"]),
    ("no live call", None, ["--user-id", UNKNOWN_ID, "--queue-id", "{billing}"], {}, 4,
     ["has no connected voice call"]),
    ("unknown user email", None, ["--user-email", "nobody@example.com", "--queue-id", "{billing}"], {}, 2,
     ["no user has the email", "--user-id"]),
    ("unknown conversation", None, ["--conversation-id", UNKNOWN_ID, "--queue-id", "{billing}"], {}, 4,
     ["not found"]),
    ("call ended before transfer", ends_before_transfer, ["--user-id", "{agent}", "--queue-id", "{billing}"], {}, 4,
     ["answered or ended before the transfer"]),
    ("429 storm past the budget", storm, ["--user-id", "{agent}", "--queue-id", "{billing}"],
     {"GENESYS_RETRY_BUDGET": "12"}, 6, ["rate limited (429)", "retry budget 12s", "next wait would have been 5.0s"]),
    ("5xx past the budget", gateway_errors, ["--user-id", "{agent}", "--queue-id", "{billing}"],
     {"GENESYS_RETRY_BUDGET": "3"}, 6, ["HTTP 502", "try again later"]),
    ("transfer never confirmed", never_lands, ["--user-id", "{agent}", "--queue-id", "{billing}", "--wait", "0.1"],
     {}, 8, ["accepted, but not seen in queue", "within 0.1s", "raise --wait"]),
    ("malformed id", None, ["--user-id", "12345", "--queue-id", "{billing}"], {}, 2, ["is not an id"]),
    ("path-like id", None, ["--conversation-id", "../../users/me", "--queue-id", "{billing}"], {}, 2,
     ["is not an id"]),
    ("missing variables", None, [], {"GENESYS_CLIENT_ID": "", "GENESYS_CLIENT_SECRET": ""}, 2,
     ["GENESYS_CLIENT_ID and GENESYS_CLIENT_SECRET are not set", "--user-id", "--queue-id"]),
    ("conflicting flags", None, ["--user-id", "{agent}", "--conversation-id", "{waiting}", "--queue-id", "{billing}",
                                 "--queue-name", "Support"], {}, 2, ["give only one of", "--queue-id / --queue-name"]),
    ("unknown region", None, ["--user-id", "{agent}", "--queue-id", "{billing}"],
     {"GENESYS_API_HOST": "", "GENESYS_REGION": "mars-1"}, 2, ["GENESYS_REGION 'mars-1' is unknown", "eu-west-1"]),
    ("plain http to a remote host", None, ["--user-id", "{agent}", "--queue-id", "{billing}"],
     {"GENESYS_API_HOST": "http://api.example.com"}, 2, ["use https"]),
]


@pytest.mark.parametrize("name, change, argv, env, code, fragments", FAILURES, ids=[f[0] for f in FAILURES])
def test_failure_table(scenario: Scenario, run_inprocess, name, change, argv, env, code, fragments) -> None:
    org = scenario.org
    if change:
        change(org)
    ids = {"agent": scenario.agent, "billing": scenario.billing, "support": scenario.support,
           "waiting": scenario.waiting_call}

    result = run_inprocess(org, *[part.format(**ids) for part in argv], env=env)

    assert result.code == code, result.err
    error_lines = [line for line in result.err.splitlines() if "error:" in line]
    if code == 4:  # no call to act on is an outcome, not an error: said on the last line, without "error:"
        assert error_lines == [], result.err
        error_lines = result.err.splitlines()[-1:]
    assert len(error_lines) == 1, result.err
    for fragment in fragments:
        assert fragment in error_lines[0]
    assert_no_secret(org, result.out, result.err)
    if code in (2, 3) or name == "no live call":
        assert org.transfers == []
    if code == 2 and not name.startswith(("ambiguous", "unknown")):
        assert org.requests == []  # configuration errors are found before anything is sent


def test_a_transfer_answered_200_without_json_is_not_sent_again(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org
    org.inject("POST", "/replace/queue", 200, process=True, body="<html>gateway</html>")

    result = run_inprocess(org, "--user-id", scenario.agent, "--queue-id", scenario.billing)

    assert result.code == 0, result.err
    assert len(transfer_posts(org)) == 1 and len(org.transfers) == 1


def test_an_error_that_stops_a_bulk_run_does_not_hurry_the_checks_of_calls_already_moved(run_inprocess) -> None:
    import transfer_call

    org = FakeOrg(transfer_delay=1.0)  # moved calls take a second to show in their queue
    support, overflow = org.add_queue("Support"), org.add_queue("Overflow")
    calls = [org.add_waiting_call(support) for _ in range(6)]
    org.inject("POST", f"/conversations/{calls[3]}/participants", 403, times=None,
               body={"status": 403, "code": "missing.permissions", "message": "denied"})

    result = run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--concurrency", "1",
                           "--wait", "3", real_sleep=True)

    assert result.code == 8, result.err  # three calls moved, then the run stopped: partly done
    checks = org.sent("GET", "/analytics/conversations/details")
    assert 1 <= len(checks) <= 10  # paced (0.25 s, then doubling), not a loop of hundreds
    stop = transfer_call.Stop()
    stop.halt(transfer_call.AuthError("denied"))
    started = time.monotonic()
    stop.wait(0.2)
    assert stop.is_set() and time.monotonic() - started >= 0.19  # an error stops new calls, not sleeps
