"""--list (issue 17): the calls a selector picks, as they are now, and nothing changed."""

from __future__ import annotations

import pytest

from conftest import Scenario, json_lines

READS = {("POST", "/oauth/token"), ("POST", "/api/v2/analytics/conversations/details/query"),
         ("POST", "/api/v2/users/search")}  # the only POSTs a look may send: a token, a query, a search


def no_change_sent(org) -> None:
    for request in org.requests:
        assert request["method"] == "GET" or (request["method"], request["path"]) in READS, request
    assert org.transfers == [] and org.routing_changes == [] and org.attribute_changes == []


@pytest.mark.parametrize("by", ["--user-email", "--user-id"])
def test_an_agents_call_shows_the_agent_and_the_leg_that_would_move(scenario: Scenario, run_inprocess, by) -> None:
    org = scenario.org
    [leg] = org.live_participants(scenario.agent_call, "agent")

    result = run_inprocess(org, by, "ada@example.com" if by == "--user-email" else scenario.agent, "--list")

    assert result.code == 0, result.err
    assert result.out == (f"listed {scenario.agent_call} voice with agent Ada Agent (user {scenario.agent}): would "
                          f"move participant {leg['id']} (agent)\n")
    no_change_sent(org)


def test_a_waiting_call_shows_its_queue_wait_and_routing_by_name(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org
    call = org.add_waiting_call(scenario.support, caller="+13175551234", priority=10,
                                skill_ids=[scenario.skills["Billing"]], language_id=scenario.languages["Spanish"])
    [leg] = org.live_participants(call, "acd")

    text = run_inprocess(org, "--caller", "+1 317 555 1234", "--list")
    as_json = run_inprocess(org, "--conversation-id", call, "--list", "--json")

    assert text.code == as_json.code == 0, text.err + as_json.err
    assert text.out.startswith(f"listed {call} voice waiting in queue Support for ")
    assert text.out.endswith(f"s (priority 10; skills Billing; language Spanish): would move participant {leg['id']} "
                             "(acd)\n")
    [record] = json_lines(as_json.out)
    assert record == {"status": "listed", "conversationId": call, "mediaType": "voice", "participantId": leg["id"],
                      "purpose": "acd", "queueId": scenario.support, "queueName": "Support", "priority": 10,
                      "skills": ["Billing"], "language": "Spanish", "waitingSeconds": record["waitingSeconds"]}
    assert 0 <= record["waitingSeconds"] < 60
    no_change_sent(org)


def test_a_queue_with_calls_and_callbacks_lists_each_as_what_it_is(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org
    routed = org.add_waiting_callback(scenario.support, caller="+15550111")
    scheduled = org.add_waiting_callback(scenario.support, caller="+15550112", scheduled=True)

    result = run_inprocess(org, "--from-queue", "Support", "--media", "voice,callback", "--list", "--json")

    assert result.code == 0, result.err
    records = {r["conversationId"]: r for r in json_lines(result.out)}
    assert set(records) == {scenario.waiting_call, routed, scheduled}  # the agent's call waits in no queue
    assert all("reason" not in record for record in records.values())
    assert {c: records[c]["mediaType"] for c in records} == {scenario.waiting_call: "voice", routed: "callback",
                                                             scheduled: "callback"}
    assert records[scheduled]["scheduled"] is True and "waitingSeconds" not in records[scheduled]
    assert "listed 3 calls; nothing was changed" in result.err
    no_change_sent(org)


def test_a_list_file_an_undo_file_and_waiting_over_are_listed_too(scenario: Scenario, run_inprocess,
                                                                   tmp_path) -> None:
    org = scenario.org
    old = org.add_waiting_call(scenario.support, caller="+15550121", started="2026-01-01T00:00:00Z")
    ids = tmp_path / "ids.txt"
    ids.write_text(f"{old}\n{scenario.agent_call}\n")

    listed = run_inprocess(org, "--conversations-file", str(ids), "--list", "--json")
    waited = run_inprocess(org, "--from-queue", "Support", "--waiting-over", "1h", "--list", "--json")
    moved = run_inprocess(org, "--conversation-id", old, "--queue-id", scenario.billing, "--json")
    results = tmp_path / "moved.jsonl"
    results.write_text(moved.out)
    before = len(org.requests)
    undo = run_inprocess(org, "--undo", str(results), "--list", "--json")

    assert {r["conversationId"] for r in json_lines(listed.out)} == {old, scenario.agent_call}
    assert [r["conversationId"] for r in json_lines(waited.out)] == [old]
    [record] = json_lines(undo.out)
    assert record["conversationId"] == old and record["queueName"] == "Billing Overflow"
    assert all(r["method"] == "GET" or r["path"] == "/oauth/token" for r in org.requests[before:])


def test_a_list_line_can_be_fed_back_as_the_calls_to_move(scenario: Scenario, run_inprocess, tmp_path) -> None:
    org = scenario.org
    looked = run_inprocess(org, "--from-queue", "Support", "--list")
    picked = tmp_path / "picked.txt"
    picked.write_text(looked.out)

    moved = run_inprocess(org, "--conversations-file", str(picked), "--queue-id", scenario.billing)

    assert moved.code == 0, moved.err
    assert org.queue_of(scenario.waiting_call) == scenario.billing


@pytest.mark.parametrize("argv", [["--from-queue", "Billing Overflow"], ["--conversation-id", "{ended}"]])
def test_nothing_to_list_is_exit_4(scenario: Scenario, run_inprocess, argv) -> None:
    org = scenario.org
    ended = org.add_waiting_call(scenario.support, caller="+15550131")
    org.end_call(ended)

    result = run_inprocess(org, *[part.format(ended=ended) for part in argv], "--list")

    assert result.code == 4
    assert result.out == "" and "error" not in result.err
    no_change_sent(org)


def test_list_cannot_go_with_follow(scenario: Scenario, run_inprocess) -> None:
    result = run_inprocess(scenario.org, "--from-queue", "Support", "--list", "--follow", "5m")

    assert result.code == 2 and "--follow cannot go with --list" in result.err


def test_a_call_that_would_not_move_is_shown_with_why_not_exit_0(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org
    first = run_inprocess(org, "--conversation-id", scenario.waiting_call, "--queue-id", scenario.billing)
    assert first.code == 0

    result = run_inprocess(org, "--conversation-id", scenario.waiting_call, "--queue-id", scenario.billing, "--list")

    assert result.code == 0, result.err
    assert result.out.startswith(f"listed {scenario.waiting_call} voice waiting in queue Billing Overflow")
    assert "would not move it: already waiting in queue Billing Overflow; nothing to do" in result.out


def test_list_cannot_go_with_dry_run_or_check(scenario: Scenario, run_inprocess) -> None:
    for flag in ("--dry-run", "--check"):
        result = run_inprocess(scenario.org, "--from-queue", "Support", "--list", flag)
        assert result.code == 2 and f"--list cannot go with {flag}" in result.err


def test_list_lines_stay_out_of_the_output_file(scenario: Scenario, run_inprocess, tmp_path) -> None:
    output = tmp_path / "moved.txt"

    result = run_inprocess(scenario.org, "--from-queue", "Support", "--list", "--output", str(output))

    assert result.code == 0 and result.out.startswith("listed ")
    assert output.read_text() == ""
