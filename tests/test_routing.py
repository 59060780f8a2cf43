"""Priority, skills, language and participant data: on the move, and in place; what was sent, and the org after."""

from __future__ import annotations

import collections

import pytest

from conftest import json_lines, Scenario, run_script
from fake_org import FakeOrg
from test_bulk import answered_but_listed_as_waiting, evacuation_org, transfers_per_call

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def records(out: str) -> dict[str, dict]:
    return {r["conversationId"]: r for r in json_lines(out)}


def changes_sent(org: FakeOrg) -> list[tuple[str, str]]:
    """The requests that change the org, in order: (method, which kind)."""
    kinds = {"/attributes": "attributes", "/replace/queue": "transfer", "/routing/conversations/": "routing"}
    return [(r["method"], kind) for r in org.requests for part, kind in kinds.items()
            if part in r["path"] and r["method"] in ("POST", "PATCH")]


def test_overflow_without_losing_their_place_on_one_call(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org
    org.conversations[scenario.agent_call]["participants"][1]["conversationRoutingData"]["skills"] = [
        {"id": scenario.skills["Billing"], "selfUri": "/x"}]

    result = run_inprocess(org, "--user-id", scenario.agent, "--queue-name", "Billing Overflow", "--priority", "100",
                           "--no-skills", "--attribute", "transferReason=Support outage", "--json")

    assert result.code == 0, result.err
    [record] = records(result.out).values()
    assert (record["status"], record["verified"], record["routing"]) == ("transferred", True, "applied")
    assert (record["priority"], record["skillIds"], record["attributes"]) == (
        100, [], {"transferReason": "Support outage"})
    assert org.queue_of(scenario.agent_call) == scenario.billing
    routing = org.routing_of(scenario.agent_call)
    assert (routing["priority"], routing["skills"]) == (100, [])
    assert org.attributes_of(scenario.agent_call) == {"transferReason": "Support outage"}  # on the customer
    assert all(p["attributes"] == {} for p in org.conversations[scenario.agent_call]["participants"]
               if p["purpose"] != "customer")
    # Data first (the new queue's flow sees it), then the move, then the routing once it waits there.
    assert changes_sent(org) == [("PATCH", "attributes"), ("POST", "transfer"), ("PATCH", "routing")]
    assert org.sent("PATCH", "/routing/conversations/")[0]["body"] == {"priority": 100, "skillIds": []}
    customer = org.conversations[scenario.agent_call]["participants"][0]
    assert org.sent("PATCH", "/attributes")[0]["path"].endswith(f"/participants/{customer['id']}/attributes")
    assert len(org.transfers) == 1 and len(org.routing_changes) == 1


def test_skills_and_language_are_resolved_by_name_ignoring_case_active_ones_only(scenario: Scenario,
                                                                                 run_inprocess) -> None:
    org = scenario.org

    result = run_inprocess(org, "--conversation-id", scenario.waiting_call, "--queue-id", scenario.billing,
                           "--skill", "billing", "--skill", scenario.skills["Billing Escalations"],
                           "--language", "SPANISH")

    assert result.code == 0, result.err
    routing = org.routing_of(scenario.waiting_call)
    assert [s["id"] for s in routing["skills"]] == [scenario.skills["Billing"], scenario.skills["Billing Escalations"]]
    assert routing["language"]["id"] == scenario.languages["Spanish"]
    assert org.sent("GET", "/routing/skills")[0]["query"]["name"] == "billing"
    assert result.out.endswith("(moved, verified, routing applied)\n")


def test_no_language_removes_it_and_the_rest_is_left_alone(run_inprocess) -> None:
    org = FakeOrg()
    support, overflow = org.add_queue("Support"), org.add_queue("Overflow")
    spanish, billing = org.add_language("Spanish"), org.add_skill("Billing")
    call = org.add_waiting_call(support, priority=7, skill_ids=[billing], language_id=spanish)

    result = run_inprocess(org, "--conversation-id", call, "--queue-id", overflow, "--no-language")

    assert result.code == 0, result.err
    routing = org.routing_of(call)
    assert "language" not in routing and routing["priority"] == 7 and routing["skills"][0]["id"] == billing
    assert org.sent("PATCH", "/routing/conversations/")[0]["body"] == {"languageId": ""}


def test_in_place_one_call_changes_its_priority_and_moves_nothing(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org

    result = run_inprocess(org, "--conversation-id", scenario.waiting_call, "--priority", "50", "--json")

    assert result.code == 0, result.err
    [record] = records(result.out).values()
    assert (record["status"], record["routing"], record["priority"]) == ("updated", "applied", 50)
    assert record["queueId"] == record["fromQueueId"] == scenario.support
    assert org.transfers == [] and org.queue_of(scenario.waiting_call) == scenario.support
    assert org.routing_of(scenario.waiting_call)["priority"] == 50
    assert changes_sent(org) == [("PATCH", "routing")]


def test_in_place_a_whole_queue_with_one_patch_per_waiting_call(run_inprocess) -> None:
    org, support, overflow, calls = evacuation_org(14)
    answered_but_listed_as_waiting(org, calls[0])

    result = run_inprocess(org, "--from-queue", "Support", "--priority", "50", "--yes", "--json")

    assert result.code == 0, result.err
    found = records(result.out)
    assert found[calls[0]]["status"] == "skipped" and found[calls[0]]["reason"] == "already with an agent"
    waiting = calls[1:]
    assert all(found[c]["status"] == "updated" and found[c]["routing"] == "applied" for c in waiting)
    assert all(org.routing_of(c)["priority"] == 50 for c in waiting)
    assert org.transfers == [] and all(org.queue_of(c) == support for c in waiting)
    assert collections.Counter(c["conversationId"] for c in org.routing_changes) == collections.Counter(waiting)
    assert "changing 13 calls waiting in Support" in result.err


def test_a_bulk_move_with_routing_patches_each_call_once_after_it_is_seen(monkeypatch, run_inprocess) -> None:
    import transfer_call

    monkeypatch.setattr(transfer_call, "PAGE_SIZE", 10)  # several verification waves
    org, support, overflow, calls = evacuation_org(30)

    result = run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--priority", "100", "--no-skills",
                           "--yes", "--json")

    assert result.code == 0, result.err
    assert transfers_per_call(org) == collections.Counter(calls)
    assert collections.Counter(c["conversationId"] for c in org.routing_changes) == collections.Counter(calls)
    assert all(org.queue_of(c) == overflow and org.routing_of(c)["priority"] == 100 for c in calls)
    found = records(result.out)
    assert all(r["routing"] == "applied" and r["verified"] for r in found.values())
    # Each call's PATCH came after its transfer. The first call was moved, watched and routed by itself before
    # any other was sent (a routing change the role may not make stops the run there); no other call was read
    # one by one to confirm it.
    for call in calls:
        transfer = next(i for i, r in enumerate(org.requests) if call in r["path"] and "/replace/queue" in r["path"])
        patch = next(i for i, r in enumerate(org.requests) if r["path"] == f"/api/v2/routing/conversations/{call}")
        assert transfer < patch
    first_patch = next(i for i, r in enumerate(org.requests) if r["path"].startswith("/api/v2/routing/conversations/"))
    assert sum("/replace/queue" in r["path"] for r in org.requests[:first_patch]) == 1
    assert {r["path"] for r in org.sent("GET", "/api/v2/conversations/")} == {
        f"/api/v2/conversations/{org.requests[first_patch]['path'].rsplit('/', 1)[1]}"}


def test_rerunning_a_move_with_routing_sets_the_routing_again_in_place(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org
    argv = ("--conversation-id", scenario.waiting_call, "--queue-id", scenario.billing, "--priority", "30")
    assert run_inprocess(org, *argv).code == 0

    rerun = run_inprocess(org, *argv, "--json")

    assert rerun.code == 0, rerun.err
    [record] = records(rerun.out).values()
    assert (record["status"], record["routing"]) == ("updated", "applied")
    assert record["reason"].startswith("already waiting in queue")
    assert len(org.transfers) == 1 and len(org.routing_changes) == 2


def test_a_call_answered_before_its_routing_change_is_a_success(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org
    cleo = org.add_user("Cleo", "cleo@example.com")
    org.when("PATCH", "/routing/conversations/", lambda o: o.answer(scenario.waiting_call, cleo))

    result = run_inprocess(org, "--conversation-id", scenario.waiting_call, "--queue-id", scenario.billing,
                           "--priority", "5", "--json")

    assert result.code == 0, result.err
    [record] = records(result.out).values()
    assert (record["status"], record["routing"]) == ("transferred", "skipped")
    assert record["routingReason"] == "the call was answered by an agent before the routing change"
    assert org.routing_changes == []


def test_a_refused_routing_change_after_a_move_says_the_call_moved(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org
    org.permissions.discard("routing:conversation:edit")

    result = run_inprocess(org, "--user-id", scenario.agent, "--queue-id", scenario.billing, "--priority", "5",
                           "--json")

    assert result.code == 8, result.err  # partly done: the move stands, the routing did not change
    [error] = [line for line in result.err.splitlines() if "error:" in line]
    assert f"conversation {scenario.agent_call} moved to queue {scenario.billing} and was verified there" in error
    assert "but its priority did not change" in error and "routing:conversation:edit" in error
    assert org.queue_of(scenario.agent_call) == scenario.billing  # the move stands
    [record] = records(result.out).values()
    assert (record["status"], record["routing"]) == ("transferred", "failed")


def test_a_missing_routing_permission_stops_a_bulk_move_with_one_call_moved(run_inprocess) -> None:
    org, support, overflow, calls = evacuation_org(40)
    org.permissions.discard("routing:conversation:edit")

    result = run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--priority", "5", "--yes",
                           "--json", "--concurrency", "2")

    assert result.code == 8, result.err  # one call moved without its routing: partly done
    [error] = [line for line in result.err.splitlines() if "error:" in line]
    assert "the run stopped early" in error and "routing:conversation:edit" in error
    found = records(result.out)
    assert set(found) == set(calls)
    [moved] = [r for r in found.values() if r["status"] == "transferred"]
    assert moved["routing"] == "failed" and moved["moved"] == "yes"
    assert all(r["status"] == "not-sent" and r["moved"] == "no" for r in found.values() if r is not moved)
    assert len(org.transfers) == 1 and len(org.sent("PATCH", "/routing/conversations/")) == 1
    assert org.routing_changes == []


def test_dry_run_prints_every_request_in_order_and_changes_nothing(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org
    [agent_leg] = org.live_participants(scenario.agent_call, "agent")
    customer = org.conversations[scenario.agent_call]["participants"][0]

    result = run_inprocess(org, "--user-id", scenario.agent, "--queue-id", scenario.billing, "--priority", "100",
                           "--skill", "Billing", "--attribute", "transferReason=outage", "--dry-run", "--json")

    assert result.code == 0, result.err
    [record] = records(result.out).values()
    cid = scenario.agent_call
    assert record["requests"] == [
        f'PATCH /api/v2/conversations/calls/{cid}/participants/{customer["id"]}/attributes '
        '{"attributes": {"transferReason": "outage"}}',
        f'POST /api/v2/conversations/{cid}/participants/{agent_leg["id"]}/replace/queue '
        f'{{"queueId": "{scenario.billing}"}}',
        f'PATCH /api/v2/routing/conversations/{cid} {{"priority": 100, "skillIds": ["{scenario.skills["Billing"]}"]}}']
    assert changes_sent(org) == [] and org.transfers == []
    assert org.sent("GET", "/routing/skills")  # names are resolved in a dry run too


def test_check_adds_the_routing_permissions(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org
    org.permissions.discard("routing:skill:view")

    result = run_inprocess(org, "--check", "--json", "--from-queue", "Support", "--queue-id", scenario.billing,
                           "--priority", "1", "--skill", "Billing")

    assert result.code == 3
    rows = {r["permission"]: r["result"] for r in json_lines(result.out)}
    assert rows["routing:conversation:edit"] == "unknown" and rows["routing:skill:view"] == "missing"
    assert changes_sent(org) == []


# --- the failure table: each mistake → its exit code, one line naming the fix, nothing changed ----------

def skill_named_twice(org: FakeOrg) -> None:
    org.add_skill("billing")  # "Billing" exists too: the same name, ignoring case


def with_agent(scenario: Scenario) -> list[str]:
    return ["--conversation-id", scenario.agent_call, "--priority", "5"]


FAILURES = [
    # (name, change to the org, argv, exit code, fragments of the one error line)
    ("unknown skill", None, ["--conversation-id", "{waiting}", "--queue-id", "{billing}", "--skill", "Plumbing"], 2,
     ["no active skill named 'Plumbing'", "give its id"]),
    ("inactive skill", None, ["--conversation-id", "{waiting}", "--queue-id", "{billing}", "--skill",
                              "Spanish Support"], 2, ["skill 'Spanish Support' is inactive; give an active one"]),
    ("unknown skill id", None, ["--conversation-id", "{waiting}", "--queue-id", "{billing}", "--skill", UNKNOWN_ID],
     2, [f"skill {UNKNOWN_ID} does not exist"]),
    ("ambiguous skill name", skill_named_twice, ["--conversation-id", "{waiting}", "--queue-id", "{billing}",
                                                 "--skill", "Billing"], 2, ["2 active skills are named 'Billing'",
                                                                             "give the id"]),
    ("unknown language and skill together", None, ["--conversation-id", "{waiting}", "--queue-id", "{billing}",
                                                   "--language", "Klingon", "--skill", "Plumbing"], 2,
     ["no active language named 'Klingon'", "no active skill named 'Plumbing'"]),
    ("call with an agent, in place", None, ["--conversation-id", "{agent_call}", "--priority", "5"], 4,
     ["is not waiting in a queue", "nothing was changed"]),
    ("malformed attribute", None, ["--conversation-id", "{waiting}", "--queue-id", "{billing}",
                                   "--attribute", "no-equals-sign", "--attribute", "=x"], 2,
     ["--attribute 'no-equals-sign' must be KEY=VALUE", "--attribute '=x' must be KEY=VALUE"]),
    ("attribute given twice", None, ["--conversation-id", "{waiting}", "--queue-id", "{billing}",
                                     "--attribute", "a=1", "--attribute", "a=2"], 2, ["--attribute a is given twice"]),
    ("attribute too long", None, ["--conversation-id", "{waiting}", "--queue-id", "{billing}",
                                  "--attribute", "a=" + "x" * 257], 2, ["the value has 257 characters"]),
    ("priority out of range", None, ["--conversation-id", "{waiting}", "--priority", "25000001"], 2,
     ["--priority '25000001' must be a whole number from -25,000,000 to 25,000,000"]),
    ("priority not a whole number", None, ["--conversation-id", "{waiting}", "--priority", "1.5"], 2,
     ["--priority '1.5' must be a whole number"]),
    ("--wait 0 with a routing flag on a move", None, ["--conversation-id", "{waiting}", "--queue-id", "{billing}",
                                                      "--priority", "5", "--wait", "0"], 2,
     ["--wait 0 cannot go with --priority"]),
    ("skill and no-skills", None, ["--conversation-id", "{waiting}", "--skill", "Billing", "--no-skills"], 2,
     ["give --skill or --no-skills, not both"]),
    ("an agent's call, in place", None, ["--user-id", "{agent}", "--priority", "5"], 2,
     ["give --conversation-id or --from-queue"]),
    ("neither a target nor a change", None, ["--conversation-id", "{waiting}"], 2,
     ["say where to move it", "--priority"]),
]


@pytest.mark.parametrize("name, change, argv, code, fragments", FAILURES, ids=[f[0] for f in FAILURES])
def test_failure_table(scenario: Scenario, run_inprocess, name, change, argv, code, fragments) -> None:
    org = scenario.org
    if change:
        change(org)

    result = run_inprocess(org, *[scenario.fill(part) for part in argv])

    assert result.code == code, result.err
    error_lines = [line for line in result.err.splitlines() if "error:" in line]
    if code == 4:  # no call to act on is an outcome, not an error: said on the last line, without "error:"
        assert error_lines == [], result.err
        error_lines = result.err.splitlines()[-1:]
    assert len(error_lines) == 1, result.err
    for fragment in fragments:
        assert fragment in error_lines[0]
    assert changes_sent(org) == [] and org.transfers == [] and org.routing_changes == []
    if name in REFUSED_BEFORE_SENDING:
        assert org.requests == []
    if name.startswith(("priority", "attribute", "skill and")):  # one fix for one mistake
        assert "say where to move it" not in error_lines[0]


REFUSED_BEFORE_SENDING = {"malformed attribute", "attribute given twice", "attribute too long",
                          "priority out of range", "priority not a whole number",
                          "--wait 0 with a routing flag on a move", "skill and no-skills", "an agent's call, in place",
                          "neither a target nor a change"}


def test_a_routing_change_the_call_does_not_show_is_not_taken_for_done(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org
    org.inject("PATCH", "/routing/conversations/", 200, process=False,  # accepted, yet the old values stand
               body={"priority": 0, "skills": []}, headers={"Content-Type": "application/json"})

    result = run_inprocess(org, "--conversation-id", scenario.waiting_call, "--priority", "9", "--json")

    assert result.code == 5, result.err
    [record] = records(result.out).values()
    assert (record["status"], record["routing"]) == ("failed", "failed")
    assert "does not show the values asked for" in record["routingReason"]


def test_the_done_when_of_issue_11_as_a_user_runs_it(scenario: Scenario, served) -> None:
    org = scenario.org
    base_url = served(org)
    others = [org.add_waiting_call(scenario.support) for _ in range(3)]

    moved = run_script(base_url, org, "--user-id", scenario.agent, "--queue-name", "Billing Overflow",
                       "--priority", "100", "--no-skills", "--attribute", "transferReason=Support outage")

    assert moved.code == 0, moved.err
    routing = org.routing_of(scenario.agent_call)
    assert org.queue_of(scenario.agent_call) == scenario.billing
    assert (routing["priority"], routing["skills"]) == (100, [])
    assert org.attributes_of(scenario.agent_call) == {"transferReason": "Support outage"}

    in_place = run_script(base_url, org, "--from-queue", "Support", "--priority", "50", "--yes")

    assert in_place.code == 0, in_place.err
    for call in [scenario.waiting_call, *others]:
        assert org.queue_of(call) == scenario.support and org.routing_of(call)["priority"] == 50
    assert len(org.transfers) == 1


def test_a_call_answered_in_the_target_queue_before_verification_counts_as_landed(scenario: Scenario,
                                                                                  run_inprocess) -> None:
    org = scenario.org
    cleo = org.add_user("Cleo", "cleo@example.com")
    transferred = []
    org.when("POST", "/replace/queue", lambda o: transferred.append(1))
    org.when("GET", f"/conversations/{scenario.waiting_call}",  # an agent of the target queue answers at once
             lambda o: transferred and o.live_participants(scenario.waiting_call, "acd")
             and o.answer(scenario.waiting_call, cleo), times=None)

    result = run_inprocess(org, "--conversation-id", scenario.waiting_call, "--queue-id", scenario.billing,
                           "--priority", "9", "--json")

    assert result.code == 0, result.err
    [record] = records(result.out).values()
    assert (record["status"], record["verified"], record["routing"]) == ("transferred", True, "skipped")


def test_calls_answered_in_the_target_queue_count_as_landed_in_bulk(run_inprocess) -> None:
    org, support, overflow, calls = evacuation_org(5)
    cleo = org.add_user("Cleo", "cleo@example.com")
    org.when("GET", "/analytics/conversations/details",
             lambda o: [o.answer(c, cleo) for c in calls[:2] if o.live_participants(c, "acd")], times=1)

    result = run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--json")

    assert result.code == 0, result.err
    assert all(r["verified"] for r in records(result.out).values())


def test_undo_with_a_routing_flag_refuses_wait_0(run_inprocess, tmp_path) -> None:
    org = FakeOrg()
    results = tmp_path / "moved.jsonl"
    results.write_text('{"conversationId": "x", "status": "transferred", "queueId": "q", "fromQueueId": "p"}\n')

    result = run_inprocess(org, "--undo", str(results), "--priority", "5", "--wait", "0")

    assert result.code == 2 and "--wait 0 cannot go with --priority" in result.err and org.requests == []


def test_routing_flags_with_a_target_only_from_the_environment_are_refused(scenario: Scenario,
                                                                          run_inprocess) -> None:
    result = run_inprocess(scenario.org, "--conversation-id", scenario.waiting_call, "--priority", "50",
                           env={"TARGET_QUEUE_NAME": "Billing Overflow"})

    assert result.code == 2
    assert "TARGET_QUEUE_NAME is set in the environment" in result.err and "--queue-id / --queue-name" in result.err
    assert scenario.org.requests == []
