"""--check: probes only what the chosen mode needs, changes nothing, and names what is missing."""

from __future__ import annotations


from conftest import json_lines, Scenario


def rows(out: str) -> dict[str, dict]:
    return {row["permission"]: row for row in json_lines(out)}


def test_check_probes_everything_without_a_mode_and_changes_nothing(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org

    result = run_inprocess(org, "--check", "--json")

    assert result.code == 0, result.err
    found = rows(result.out)
    assert {name: row["result"] for name, row in found.items()} == {
        "conversation:communication:view": "ok", "conversation:communication:blindTransferQueue": "unknown",
        "analytics:conversationDetail:view": "ok", "routing:queue:view": "ok", "directory:user:view": "ok",
        "routing:conversation:edit": "unknown", "routing:skill:view": "ok",
        "conversation:communication:blindTransfer": "unknown", "conversation:callback:edit": "unknown"}
    assert org.transfers == [] and org.sent("POST", "/replace/queue") == []
    [query] = [r["body"] for r in org.sent("POST", "/details/query")]
    assert query["paging"]["pageSize"] == 1  # a minute, one row: cheap


def test_check_for_a_conversation_probes_only_what_that_mode_needs(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org
    org.permissions.discard("analytics:conversationDetail:view")  # not needed by --conversation-id

    result = run_inprocess(org, "--check", "--json", "--conversation-id", scenario.waiting_call,
                           "--queue-id", scenario.billing)

    assert result.code == 0, result.err
    assert set(rows(result.out)) == {"conversation:communication:view", "conversation:communication:blindTransferQueue",
                                     "routing:queue:view"}
    assert org.sent("GET", f"/routing/queues/{scenario.billing}")


def test_check_names_each_missing_permission_and_exits_3(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org
    org.permissions -= {"conversation:communication:view", "directory:user:view"}

    result = run_inprocess(org, "--check")

    assert result.code == 3
    table = result.out.splitlines()
    assert table[0].split() == ["permission", "needed", "for", "result"]
    assert any(line.startswith("conversation:communication:view") and "missing" in line for line in table)
    assert "lacks conversation:communication:view, directory:user:view; add them" in result.err


def test_check_exits_2_naming_a_target_queue_that_is_not_there(scenario: Scenario, run_inprocess) -> None:
    result = run_inprocess(scenario.org, "--check", "--queue-id", "00000000-0000-4000-8000-00000000000a")

    assert result.code == 2, result.err
    assert "routing:queue:view" in result.out  # the table still comes first
    [error] = [line for line in result.err.splitlines() if "error:" in line]
    assert "queue 00000000-0000-4000-8000-00000000000a does not exist or is not visible" in error


def test_check_resolves_every_queue_and_user_named_and_reports_all_that_are_missing(scenario: Scenario,
                                                                                   run_inprocess) -> None:
    org = scenario.org

    result = run_inprocess(org, "--check", "--user-email", "nobody@example.com", "--queue-name", "Nope")

    assert result.code == 2, result.err
    [error] = [line for line in result.err.splitlines() if "error:" in line]
    assert "no queue named 'Nope'" in error and "no user has the email nobody@example.com" in error
    assert org.transfers == []

    found = run_inprocess(org, "--check", "--from-queue", "support", "--queue-name", "Billing Overflow")

    assert found.code == 0, found.err
    assert {r["query"].get("name") for r in org.sent("GET", "/routing/queues")} >= {"support", "Billing Overflow"}


def test_check_for_a_caller_does_not_want_the_user_lookup_permission(scenario: Scenario, run_inprocess) -> None:
    org = scenario.org
    org.permissions.discard("directory:user:view")  # only --user-email needs it

    result = run_inprocess(org, "--check", "--json", "--caller", "+13175551234", "--queue-id", scenario.billing)

    assert result.code == 0, result.err
    assert "directory:user:view" not in rows(result.out)
    assert rows(result.out)["analytics:conversationDetail:view"]["result"] == "ok"
