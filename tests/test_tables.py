"""A routing field is a row of ROUTING: a row added at test time works end to end with no other edit.

The row is skillExpression (RoutingConversationAttributesRequest.skillExpression, shown in
conversationRoutingData.skillExpression), which the tool does not offer today: its flags, the
settings, --help, --list, --check, a change in place and a move with it all come from the row.
"""

from __future__ import annotations

import json

import pytest

import transfer_call
from conftest import final_records, json_lines
from fake_org import ROUTING_BODY_MODELLED, build_scenario

EXPRESSION = "Billing AND Spanish"


@pytest.fixture
def with_skill_expression(monkeypatch: pytest.MonkeyPatch) -> None:
    row = transfer_call.RoutingField(
        "skillExpression", "--skill-expression", "EXPR", "the skill expression agents must meet", "skill expression",
        lambda data: data.skill_expression or "", clear="--no-skill-expression",
        clear_help="remove the skill expression")
    monkeypatch.setattr(transfer_call, "ROUTING", (*transfer_call.ROUTING, row))


def scenario_with_expressions():
    scenario = build_scenario()
    scenario.org.routing_modelled = ROUTING_BODY_MODELLED | {"skillExpression"}
    return scenario


def test_a_routing_row_brings_its_flags_help_and_settings(with_skill_expression, capsys) -> None:
    with pytest.raises(SystemExit):
        transfer_call.parse_args(["--help"])
    help_text = capsys.readouterr().out
    assert "--skill-expression EXPR" in help_text and "--no-skill-expression" in help_text

    env = {"GENESYS_CLIENT_ID": "3c9a1ee0-1b7e-4c1f-9a55-0d6f3f1b2a10", "GENESYS_CLIENT_SECRET": "s",
           "GENESYS_API_HOST": "https://api.fake.test"}
    conversation = "1d6f8f1e-0f0e-4b5e-9d53-0c2b9f0a4d11"
    settings = transfer_call.resolve_settings(transfer_call.parse_args(
        ["--conversation-id", conversation, "--skill-expression", f" {EXPRESSION} "]), env)
    assert settings.routing == {"skillExpression": EXPRESSION} and settings.in_place
    with pytest.raises(transfer_call.UsageError, match="give --skill-expression or --no-skill-expression, not both"):
        transfer_call.resolve_settings(transfer_call.parse_args(
            ["--conversation-id", conversation, "--skill-expression", "x", "--no-skill-expression"]), env)
    with pytest.raises(transfer_call.UsageError, match="--wait 0 cannot go with .*--skill-expression"):
        transfer_call.resolve_settings(transfer_call.parse_args(
            ["--conversation-id", conversation, "--queue-id", conversation, "--skill-expression", "x", "--wait", "0"]),
            env)


def test_a_routing_row_is_listed_checked_and_set_in_place(with_skill_expression, run_inprocess) -> None:
    scenario = scenario_with_expressions()
    org, call = scenario.org, scenario.waiting_call

    listed = run_inprocess(org, "--from-queue", "Support", "--list")
    assert listed.code == 0, listed.err
    assert "skill expression -" in listed.out  # none set yet

    check = run_inprocess(org, "--check", "--skill-expression", EXPRESSION, "--json")
    assert check.code == 0, check.err
    rows = {row["permission"]: row for row in json_lines(check.out)}
    assert "--skill-expression" in rows["routing:conversation:edit"]["neededFor"]

    changed = run_inprocess(org, "--conversation-id", call, "--skill-expression", EXPRESSION, "--json")
    assert changed.code == 0, changed.err
    assert [c["body"] for c in org.routing_changes] == [{"skillExpression": EXPRESSION}]
    assert org.routing_of(call)["skillExpression"] == EXPRESSION
    [record] = final_records(changed.out)
    assert (record["status"], record["routing"], record["skillExpression"]) == ("updated", "applied", EXPRESSION)

    listed = run_inprocess(org, "--from-queue", "Support", "--list", "--json")
    assert [json.loads(line).get("skill expression") for line in listed.out.splitlines()[:1]] == [EXPRESSION]

    cleared = run_inprocess(org, "--conversation-id", call, "--no-skill-expression")
    assert cleared.code == 0, cleared.err
    assert org.routing_changes[-1]["body"] == {"skillExpression": ""}
    assert "skillExpression" not in org.routing_of(call)


def test_a_routing_row_goes_with_a_move(with_skill_expression, run_inprocess) -> None:
    scenario = scenario_with_expressions()
    org, call = scenario.org, scenario.waiting_call

    moved = run_inprocess(org, "--conversation-id", call, "--queue-id", scenario.billing, "--skill-expression",
                          EXPRESSION, "--json")

    assert moved.code == 0, moved.err
    assert [t["conversationId"] for t in org.transfers] == [call] and org.queue_of(call) == scenario.billing
    assert [c["body"] for c in org.routing_changes] == [{"skillExpression": EXPRESSION}]
    assert org.routing_of(call)["skillExpression"] == EXPRESSION
    assert final_records(moved.out)[0]["routing"] == "applied"
