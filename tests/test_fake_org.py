"""The fake org's routing, participant-data and caller-number features behave as documented and fit the SDK.

Every new route is driven through httpx.MockTransport(org.handle) with a token from POST /oauth/token,
and every answer is checked against its SDK model: no keys the model lacks, and the SDK's own
deserializer reads it. One test drives the same routes through the SDK's own API methods, which
proves the paths and methods are the SDK's.
"""

from __future__ import annotations

import datetime as dt
import json
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import fake_org
from conftest import Scenario
from fake_org import (ALL_PERMISSIONS, ANONYMOUS_ADDRESS, CALLBACK_NOT_A_CALL, CALLBACK_NOT_OFFERED,
                      CALLBACK_NOT_SCHEDULED, CALLBACK_ROUTED_STATE, NOT_IN_QUEUE, PRIORITY_LIMIT, ROUTING_BODY_KEYS,
                      TRANSFER_PERMISSIONS, FakeOrg, build_scenario)
from test_conformance import deserialize, sdk, unknown_keys

import PureCloudPlatformClientV2 as package  # noqa: E402 - lazily registered by the import above: API classes load on use

BASE = "https://api.fake.test"
FAKE_ORG = Path(__file__).resolve().parent / "fake_org.py"


# --- helpers ---------------------------------------------------------------------------------

def client_for(org: FakeOrg) -> httpx.Client:
    """An httpx client on the org through MockTransport, holding a real token from POST /oauth/token."""
    client = httpx.Client(transport=httpx.MockTransport(org.handle), base_url=BASE)
    answer = client.post("/oauth/token", auth=(org.client_id, org.client_secret),
                         data={"grant_type": "client_credentials"})
    assert answer.status_code == 200, answer.text
    client.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
    return client


@pytest.fixture
def api(scenario: Scenario) -> httpx.Client:
    return client_for(scenario.org)


def fits(data: Any, klass: str) -> Any:
    """Assert the JSON has no key the SDK model lacks nor a value its enums lack; return the SDK's reading of it."""
    assert unknown_keys(data, klass) == []
    model = deserialize(data, klass)
    assert "outdated_sdk_version" not in json.dumps(model.to_dict(), default=str)  # what the SDK makes of an unknown enum
    return model


def refused(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["code"] == code and body["status"] == status
    fits(body, "ErrorBody")


def patch_routing(api: httpx.Client, conversation_id: str, body: Any) -> httpx.Response:
    return api.patch(f"/api/v2/routing/conversations/{conversation_id}", json=body)


def patch_attributes(api: httpx.Client, conversation_id: str, participant_id: str, body: Any) -> httpx.Response:
    return api.patch(f"/api/v2/conversations/calls/{conversation_id}/participants/{participant_id}/attributes",
                     json=body)


def transfer(api: httpx.Client, conversation_id: str, participant_id: str, queue_id: str) -> None:
    answer = api.post(f"/api/v2/conversations/{conversation_id}/participants/{participant_id}/replace/queue",
                      json={"queueId": queue_id})
    assert answer.status_code == 202, answer.text


def leg(api: httpx.Client, conversation_id: str, purpose: str) -> dict[str, Any]:
    """The live participant with that purpose, read over the API (and checked against Conversation)."""
    answer = api.get(f"/api/v2/conversations/{conversation_id}")
    assert answer.status_code == 200
    fits(answer.json(), "Conversation")
    return next(p for p in answer.json()["participants"] if p["purpose"] == purpose and "endTime" not in p)


def dimension(name: str, value: str | None = None, operator: str = "matches") -> dict[str, Any]:
    predicate = {"type": "dimension", "dimension": name, "operator": operator}
    return predicate if value is None else {**predicate, "value": value}


def details(api: httpx.Client, *, conversation_filters: list[Any] | None = None,
            segment_filters: list[Any] | None = None) -> list[dict[str, Any]]:
    """Conversations the details query finds, the request and the answer checked against the SDK models."""
    now = dt.datetime.now(dt.timezone.utc)
    body: dict[str, Any] = {"interval": f"{(now - dt.timedelta(days=1)):%Y-%m-%dT%H:%M:%SZ}/"
                                        f"{(now + dt.timedelta(days=1)):%Y-%m-%dT%H:%M:%SZ}", "order": "asc"}
    if conversation_filters is not None:
        body["conversationFilters"] = conversation_filters
    if segment_filters is not None:
        body["segmentFilters"] = segment_filters
    fits(body, "ConversationQuery")
    answer = api.post("/api/v2/analytics/conversations/details/query", json=body)
    assert answer.status_code == 200, answer.text
    fits(answer.json(), "AnalyticsConversationQueryResponse")
    return answer.json().get("conversations", [])


def zulu(moment: dt.datetime) -> str:
    """A time as Genesys writes it: UTC, milliseconds, Z."""
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def found_ids(conversations: list[dict[str, Any]]) -> set[str]:
    return {c["conversationId"] for c in conversations}


# --- skills and languages ------------------------------------------------------------------

def test_skills_by_name_match_a_prefix_in_any_case_and_list_every_state(scenario: Scenario, api: httpx.Client) -> None:
    for name, expected in [("Billing", {"Billing", "Billing Escalations"}), ("billing esc", {"Billing Escalations"}),
                           ("SPANISH", {"Spanish Support"}), ("", {"Billing", "Billing Escalations", "Spanish Support"}),
                           ("Escalations", set()), ("Billing Escalations and more", set())]:
        answer = api.get("/api/v2/routing/skills", params={"name": name} if name else {})
        assert answer.status_code == 200, answer.text
        listing = fits(answer.json(), "SkillEntityListing")
        assert {s.name for s in listing.entities} == expected, name
        assert listing.total == len(expected)
        for skill in answer.json()["entities"]:
            assert skill == scenario.org.skills[skill["id"]]
            assert scenario.skills[skill["name"]] == skill["id"]
    inactive = api.get("/api/v2/routing/skills", params={"name": "Spanish"}).json()["entities"]
    assert [s["state"] for s in inactive] == ["inactive"]  # the client must filter by state itself
    assert fits(inactive[0], "RoutingSkill").state == "inactive"  # a state the SDK's enum knows


def test_skill_listing_pages(scenario: Scenario, api: httpx.Client) -> None:
    for n in range(5):
        scenario.org.add_skill(f"Tier {n}", state="deleted" if n == 4 else "active")
    pages = [api.get("/api/v2/routing/skills", params={"name": "tier", "pageSize": 2, "pageNumber": number}).json()
             for number in (1, 2, 3, 4)]
    for page in pages:
        fits(page, "SkillEntityListing")
        assert page["total"] == 5 and page["pageCount"] == 3 and page["pageSize"] == 2
    assert [[s["name"] for s in page["entities"]] for page in pages] == [
        ["Tier 0", "Tier 1"], ["Tier 2", "Tier 3"], ["Tier 4"], []]
    assert pages[2]["entities"][0]["state"] == "deleted"
    refused(api.get("/api/v2/routing/skills", params={"pageSize": "many"}), 400, "bad.request")
    refused(api.get("/api/v2/routing/skills", params={"pageNumber": 0}), 400, "bad.request")


def test_a_skill_by_id(scenario: Scenario, api: httpx.Client) -> None:
    skill_id = scenario.skills["Billing Escalations"]
    answer = api.get(f"/api/v2/routing/skills/{skill_id}")
    assert answer.status_code == 200
    skill = fits(answer.json(), "RoutingSkill")
    assert (skill.id, skill.name, skill.state) == (skill_id, "Billing Escalations", "active")
    assert answer.json()["selfUri"] == f"/api/v2/routing/skills/{skill_id}"
    refused(api.get("/api/v2/routing/skills/no-such-skill"), 404, "not.found")


def test_skill_lookups_need_routing_skill_view(scenario: Scenario, api: httpx.Client) -> None:
    scenario.org.permissions.discard("routing:skill:view")
    refused(api.get("/api/v2/routing/skills", params={"name": "Billing"}), 403, "missing.any.permissions")
    refused(api.get(f"/api/v2/routing/skills/{scenario.skills['Billing']}"), 403, "missing.any.permissions")


def test_languages_by_name_prefix_and_id_need_only_a_token(scenario: Scenario, api: httpx.Client) -> None:
    scenario.org.permissions.clear()
    scenario.org.add_language("Spanglish", state="inactive")
    for name, expected in [("span", {"Spanish", "Spanglish"}), ("ENGLISH", {"English"}), ("", {"English", "Spanish",
                                                                                              "Spanglish"})]:
        answer = api.get("/api/v2/routing/languages", params={"name": name})
        assert answer.status_code == 200, answer.text
        listing = fits(answer.json(), "LanguageEntityListing")
        assert {language.name for language in listing.entities} == expected
    spanish = scenario.languages["Spanish"]
    answer = api.get(f"/api/v2/routing/languages/{spanish}")
    assert answer.status_code == 200
    language = fits(answer.json(), "Language")
    assert (language.id, language.name, language.state) == (spanish, "Spanish", "active")
    refused(api.get("/api/v2/routing/languages/no-such-language"), 404, "not.found")
    tokenless = httpx.Client(transport=httpx.MockTransport(scenario.org.handle), base_url=BASE)
    refused(tokenless.get("/api/v2/routing/languages"), 401, "authentication.required")


def test_the_scenario_has_ambiguous_and_inactive_skills_and_two_languages(scenario: Scenario) -> None:
    org = scenario.org
    assert {name: org.skills[i]["state"] for name, i in scenario.skills.items()} == {
        "Billing": "active", "Billing Escalations": "active", "Spanish Support": "inactive"}
    assert {name: org.languages[i]["name"] for name, i in scenario.languages.items()} == {
        "English": "English", "Spanish": "Spanish"}
    assert org.routing_of(scenario.waiting_call) == {
        "queue": {"id": scenario.support, "selfUri": f"/api/v2/routing/queues/{scenario.support}"},
        "priority": 0, "skills": []}


# --- routing data on the queue leg ---------------------------------------------------------------

def test_a_waiting_call_carries_its_routing_data_on_the_acd_leg(scenario: Scenario, api: httpx.Client) -> None:
    org = scenario.org
    call = org.add_waiting_call(scenario.billing, priority=7, skill_ids=[scenario.skills["Billing"]],
                                language_id=scenario.languages["Spanish"])
    acd = leg(api, call, "acd")
    data = deserialize(acd, "Participant").conversation_routing_data
    assert data.queue.id == scenario.billing and data.priority == 7
    assert [s.id for s in data.skills] == [scenario.skills["Billing"]]
    assert data.language.id == scenario.languages["Spanish"]
    assert acd["conversationRoutingData"] == org.routing_of(call)
    assert acd["conversationRoutingData"]["skills"][0]["selfUri"] == f"/api/v2/routing/skills/{scenario.skills['Billing']}"
    assert "language" not in org.routing_of(scenario.waiting_call)


def test_routing_of_is_none_unless_the_call_waits_in_a_queue(scenario: Scenario) -> None:
    org = scenario.org
    assert org.routing_of(scenario.agent_call) is None
    assert org.routing_of(org.add_ivr_call()) is None
    org.end_call(scenario.waiting_call)
    assert org.routing_of(scenario.waiting_call) is None


def test_a_blind_transfer_keeps_priority_skills_and_language(scenario: Scenario, api: httpx.Client) -> None:
    org = scenario.org
    skills = [scenario.skills["Billing"], scenario.skills["Billing Escalations"]]
    call = org.add_waiting_call(scenario.support, priority=12, skill_ids=skills, language_id=scenario.languages["English"])
    before = org.routing_of(call)

    transfer(api, call, leg(api, call, "acd")["id"], scenario.billing)

    after = org.routing_of(call)
    assert org.queue_of(call) == scenario.billing
    assert after == {**before, "queue": {"id": scenario.billing, "selfUri": f"/api/v2/routing/queues/{scenario.billing}"}}
    assert leg(api, call, "acd")["conversationRoutingData"] == after


def test_the_org_setting_drops_only_the_skills_on_a_blind_transfer() -> None:
    ids = build_scenario(remove_skills_from_blind_transfer=True)
    org, api = ids.org, client_for(ids.org)
    call = org.add_waiting_call(ids.support, priority=-3, skill_ids=[ids.skills["Billing"]],
                                language_id=ids.languages["Spanish"])
    before = org.routing_of(call)

    transfer(api, call, leg(api, call, "acd")["id"], ids.billing)

    after = org.routing_of(call)
    assert after["queue"]["id"] == ids.billing and after["skills"] == [] and before["skills"]
    assert (after["priority"], after["language"]) == (before["priority"], before["language"])


def test_an_agent_leg_transfer_takes_the_routing_data_the_call_last_waited_with(scenario: Scenario,
                                                                                 api: httpx.Client) -> None:
    org = scenario.org
    call = org.add_waiting_call(scenario.support, priority=4, skill_ids=[scenario.skills["Billing"]])
    assert patch_routing(api, call, {"priority": 9, "languageId": scenario.languages["English"]}).status_code == 200
    waited_with = org.routing_of(call)
    org.answer(call, scenario.agent)
    assert org.routing_of(call) is None

    transfer(api, call, leg(api, call, "agent")["id"], scenario.billing)

    assert org.routing_of(call) == {**waited_with, "queue": {"id": scenario.billing,
                                                             "selfUri": f"/api/v2/routing/queues/{scenario.billing}"}}


def test_a_delayed_transfer_carries_the_routing_data_in_force_when_it_takes_effect() -> None:
    ids = build_scenario(transfer_delay=0.5)
    org, api = ids.org, client_for(ids.org)
    call = org.add_waiting_call(ids.support, priority=2, skill_ids=[ids.skills["Billing"]])
    transfer(api, call, leg(api, call, "acd")["id"], ids.billing)
    assert org.routing_of(call)["queue"]["id"] == ids.support  # not applied yet: still waiting in Support
    assert patch_routing(api, call, {"priority": 30}).status_code == 200
    deadline = time.monotonic() + 10
    while org.queue_of(call) != ids.billing and time.monotonic() < deadline:
        time.sleep(0.05)

    assert org.routing_of(call) == {"queue": {"id": ids.billing, "selfUri": f"/api/v2/routing/queues/{ids.billing}"},
                                    "priority": 30, "skills": [{"id": ids.skills["Billing"],
                                                                "selfUri": f"/api/v2/routing/skills/{ids.skills['Billing']}"}]}


# --- PATCH /api/v2/routing/conversations/{id} ---------------------------------------------------------

def test_routing_patch_changes_what_is_sent_and_answers_what_is_in_force(scenario: Scenario, api: httpx.Client) -> None:
    org, call = scenario.org, scenario.waiting_call
    billing, escalations = scenario.skills["Billing"], scenario.skills["Billing Escalations"]
    english, spanish = scenario.languages["English"], scenario.languages["Spanish"]

    first = {"priority": 25, "skillIds": [billing, escalations], "languageId": spanish}
    answer = patch_routing(api, call, first)
    assert answer.status_code == 200, answer.text
    result = fits(answer.json(), "RoutingConversationAttributesResponse")
    assert result.priority == 25 and [s.name for s in result.skills] == ["Billing", "Billing Escalations"]
    assert result.language.name == "Spanish" and all(s.state == "active" for s in result.skills)
    assert answer.json()["skills"] == [org.skills[billing], org.skills[escalations]]
    assert answer.json()["language"] == org.languages[spanish]
    routing = org.routing_of(call)
    assert (routing["priority"], [s["id"] for s in routing["skills"]], routing["language"]["id"]) == (
        25, [billing, escalations], spanish)
    assert leg(api, call, "acd")["conversationRoutingData"] == routing

    answer = patch_routing(api, call, {"priority": -5})  # only what is sent changes
    assert answer.status_code == 200
    assert fits(answer.json(), "RoutingConversationAttributesResponse").priority == -5
    assert [s["id"] for s in answer.json()["skills"]] == [billing, escalations] and answer.json()["language"]["id"] == spanish
    assert org.routing_of(call) == {**routing, "priority": -5}

    answer = patch_routing(api, call, {"skillIds": [escalations], "languageId": english})  # skills: the whole new set
    assert [s["id"] for s in answer.json()["skills"]] == [escalations] and answer.json()["language"]["id"] == english
    assert [s["id"] for s in org.routing_of(call)["skills"]] == [escalations]

    answer = patch_routing(api, call, {"skillIds": [], "languageId": "", "priority": 0})  # [] and "" remove
    assert answer.status_code == 200
    assert answer.json() == {"priority": 0, "skills": []}
    fits(answer.json(), "RoutingConversationAttributesResponse")
    assert org.routing_of(call) == {"queue": routing["queue"], "priority": 0, "skills": []}

    assert [c["body"] for c in org.routing_changes] == [
        first, {"priority": -5}, {"skillIds": [escalations], "languageId": english},
        {"skillIds": [], "languageId": "", "priority": 0}]
    assert {c["conversationId"] for c in org.routing_changes} == {call}


def test_routing_patch_accepts_the_priority_bounds(scenario: Scenario, api: httpx.Client) -> None:
    for priority in (PRIORITY_LIMIT, -PRIORITY_LIMIT):
        answer = patch_routing(api, scenario.waiting_call, {"priority": priority})
        assert answer.status_code == 200 and answer.json()["priority"] == priority
        assert scenario.org.routing_of(scenario.waiting_call)["priority"] == priority


@pytest.mark.parametrize("body", [
    {"priority": PRIORITY_LIMIT + 1}, {"priority": -PRIORITY_LIMIT - 1}, {"priority": "5"}, {"priority": 1.5},
    {"priority": True}, {"priority": None}, {"skillIds": "a-skill"}, {"skillIds": [3]}, {"skillIds": None},
    {"languageId": None}, {"languageId": 4}, {"queueId": "x"}, {"priority": 1, "routingData": {}},
    {"skillExpression": "x"}, [], "priority=5", None,
])
def test_routing_patch_refuses_a_malformed_body_and_changes_nothing(scenario: Scenario, api: httpx.Client,
                                                                   body: Any) -> None:
    before = scenario.org.routing_of(scenario.waiting_call)
    content = body if isinstance(body, str) else json.dumps(body) if body is not None else ""
    answer = api.patch(f"/api/v2/routing/conversations/{scenario.waiting_call}", content=content,
                       headers={"Content-Type": "application/json"})
    refused(answer, 400, "bad.request")
    assert scenario.org.routing_of(scenario.waiting_call) == before and scenario.org.routing_changes == []


def test_routing_patch_refuses_unknown_skill_or_language_ids(scenario: Scenario, api: httpx.Client) -> None:
    before = scenario.org.routing_of(scenario.waiting_call)
    for body in ({"skillIds": [scenario.skills["Billing"], "no-such-skill"]}, {"languageId": "no-such-language"},
                 {"languageId": scenario.skills["Billing"]}, {"skillIds": [scenario.languages["English"]]}):
        refused(patch_routing(api, scenario.waiting_call, body), 400, "invalid.value")
    assert scenario.org.routing_of(scenario.waiting_call) == before and scenario.org.routing_changes == []


def test_routing_patch_refuses_a_call_not_waiting_in_a_queue(scenario: Scenario, api: httpx.Client) -> None:
    org = scenario.org
    ended = org.add_waiting_call(scenario.support)
    org.end_call(ended)
    for call in (scenario.agent_call, ended, org.add_ivr_call()):
        refused(patch_routing(api, call, {"priority": 5}), 400, NOT_IN_QUEUE)
    refused(patch_routing(api, "no-such-conversation", {"priority": 5}), 404, "not.found")
    assert org.routing_changes == []


def test_routing_patch_needs_routing_conversation_edit(scenario: Scenario, api: httpx.Client) -> None:
    assert "routing:conversation:edit" in ALL_PERMISSIONS
    scenario.org.permissions.discard("routing:conversation:edit")
    refused(patch_routing(api, scenario.waiting_call, {"priority": 5}), 403, "missing.any.permissions")
    assert scenario.org.routing_of(scenario.waiting_call)["priority"] == 0


def test_routing_patch_bodies_fit_the_sdk_request_model(scenario: Scenario, api: httpx.Client) -> None:
    model = sdk.models.RoutingConversationAttributesRequest()
    assert ROUTING_BODY_KEYS == set(model.attribute_map.values())
    for body in ({"priority": 3}, {"skillIds": [scenario.skills["Billing"]], "languageId": ""},
                 {"priority": PRIORITY_LIMIT, "skillIds": [], "languageId": scenario.languages["English"]}):
        assert patch_routing(api, scenario.waiting_call, body).status_code == 200
    for change in scenario.org.routing_changes:
        assert unknown_keys(change["body"], "RoutingConversationAttributesRequest") == []
        request = deserialize(change["body"], "RoutingConversationAttributesRequest")  # the SDK checks the range
        assert sdk.ApiClient(host=BASE).sanitize_for_serialization(request) == change["body"]
    with pytest.raises(ValueError):
        deserialize({"priority": PRIORITY_LIMIT + 1}, "RoutingConversationAttributesRequest")


# --- participant data --------------------------------------------------------------------------

def test_participant_data_merges_and_needs_no_permission(scenario: Scenario, api: httpx.Client) -> None:
    org, call = scenario.org, scenario.waiting_call
    customer = leg(api, call, "customer")
    org.permissions.clear()

    answer = patch_attributes(api, call, customer["id"], {"attributes": {"moved_by": "ops", "reason": "overflow"}})
    assert answer.status_code == 202, answer.text
    assert fits(answer.json(), "ParticipantAttributes").attributes == {"moved_by": "ops", "reason": "overflow"}

    answer = patch_attributes(api, call, customer["id"], {"attributes": {"reason": "storm", "ticket": "T-1"}})
    assert answer.status_code == 202
    merged = {"moved_by": "ops", "reason": "storm", "ticket": "T-1"}
    assert fits(answer.json(), "ParticipantAttributes").attributes == merged
    org.permissions.update(ALL_PERMISSIONS)  # to read the conversation back
    assert org.attributes_of(call) == merged == leg(api, call, "customer")["attributes"]
    assert org.attributes_of(call, "acd") == {}
    assert org.attribute_changes == [
        {"conversationId": call, "participantId": customer["id"], "attributes": {"moved_by": "ops", "reason": "overflow"}},
        {"conversationId": call, "participantId": customer["id"], "attributes": {"reason": "storm", "ticket": "T-1"}}]


def test_participant_data_on_another_leg_and_attributes_of_by_purpose(scenario: Scenario, api: httpx.Client) -> None:
    org, call = scenario.org, scenario.agent_call
    agent = leg(api, call, "agent")
    assert patch_attributes(api, call, agent["id"], {"attributes": {"note": "x"}}).status_code == 202
    assert org.attributes_of(call, "agent") == {"note": "x"} and org.attributes_of(call) == {}
    assert org.attributes_of(call, "acd") == {}  # the ended acd leg, the only one
    with pytest.raises(ValueError):
        org.attributes_of(call, "ivr")


@pytest.mark.parametrize("body", [
    {"attributes": {"count": 3}}, {"attributes": {"flag": True}}, {"attributes": {"none": None}},
    {"attributes": {"nested": {"a": "b"}}}, {"attributes": ["a"]}, {"attributes": "a=b"},
    {"attributes": {"a": "b"}, "extra": "x"}, {}, {"key": "value"}, [], None,
])
def test_participant_data_refuses_a_malformed_body(scenario: Scenario, api: httpx.Client, body: Any) -> None:
    call = scenario.waiting_call
    customer = leg(api, call, "customer")
    refused(patch_attributes(api, call, customer["id"], body), 400, "bad.request")
    assert scenario.org.attributes_of(call) == {} and scenario.org.attribute_changes == []


def test_participant_data_on_an_unknown_call_or_participant_is_not_found(scenario: Scenario, api: httpx.Client) -> None:
    customer = leg(api, scenario.waiting_call, "customer")
    body = {"attributes": {"a": "b"}}
    refused(patch_attributes(api, "no-such-conversation", customer["id"], body), 404, "not.found")
    refused(patch_attributes(api, scenario.agent_call, customer["id"], body), 404, "not.found")
    refused(patch_attributes(api, scenario.waiting_call, "no-such-participant", body), 404, "not.found")
    assert scenario.org.attribute_changes == []


def test_participant_data_bodies_fit_the_sdk_request_model(scenario: Scenario, api: httpx.Client) -> None:
    customer = leg(api, scenario.waiting_call, "customer")
    for attributes in ({"a": "1"}, {"b": "", "c": "x" * 256}):
        assert patch_attributes(api, scenario.waiting_call, customer["id"], {"attributes": attributes}).status_code == 202
    for change in scenario.org.attribute_changes:
        body = {"attributes": change["attributes"]}
        assert unknown_keys(body, "ParticipantAttributes") == []
        assert deserialize(body, "ParticipantAttributes").attributes == change["attributes"]


# --- callers' numbers ----------------------------------------------------------------------------

def test_the_customer_leg_carries_the_callers_number(scenario: Scenario, api: httpx.Client) -> None:
    org = scenario.org
    call = org.add_waiting_call(scenario.support, caller="+13175551234")
    customer = deserialize(leg(api, call, "customer"), "Participant")
    assert (customer.ani, customer.address) == ("tel:+13175551234", "tel:+13175551234")
    withheld = deserialize(leg(api, org.add_waiting_call(scenario.support, caller=None), "customer"), "Participant")
    assert (withheld.ani, withheld.address) == ("anonymous", ANONYMOUS_ADDRESS)
    for wrong in ("3175551234", "+0317555", "tel:+13175551234", "+1 317 555 1234"):
        with pytest.raises(ValueError):
            org.add_waiting_call(scenario.support, caller=wrong)


def test_analytics_sessions_carry_the_callers_number_in_genesys_forms(scenario: Scenario, api: httpx.Client) -> None:
    org = scenario.org
    call = org.add_waiting_call(scenario.support, caller="+13175551234")
    org.answer(call, scenario.agent)
    withheld = org.add_ivr_call(caller=None)
    views = {c["conversationId"]: c for c in details(api)}
    sessions = {p["purpose"]: [s["ani"] for s in p["sessions"]] for p in views[call]["participants"]}
    assert sessions == {"customer": ["tel:+13175551234"], "acd": ["tel:+13175551234"],
                        "agent": ["sip:+13175551234@fake.example;user=phone"]}
    assert {p["purpose"]: [s["ani"] for s in p["sessions"]] for p in views[withheld]["participants"]} == {
        "customer": ["anonymous"], "ivr": ["anonymous"]}


def test_the_details_query_finds_a_call_by_ani(scenario: Scenario, api: httpx.Client) -> None:
    org = scenario.org
    call = org.add_waiting_call(scenario.billing, caller="+13175551234")
    org.add_waiting_call(scenario.billing, caller="+13175551235")

    def by_ani(value: str) -> set[str]:
        return found_ids(details(api, segment_filters=[
            {"type": "and", "predicates": [dimension("ani", value), dimension("segmentEnd", operator="notExists")]}]))

    assert by_ani("tel:+13175551234") == {call}
    assert by_ani("+13175551234") == set()  # the fake matches one exact form (the real API's forms are unverified)
    org.answer(call, scenario.agent)
    assert by_ani("sip:+13175551234@fake.example;user=phone") == {call}  # the live agent session
    assert found_ids(details(api, segment_filters=[{"type": "and", "predicates": [dimension("ani", operator="exists")]}])) \
        == set(org.conversations)


# --- details query filters -------------------------------------------------------------------------

def test_or_filter_groups_and_several_groups_anded(scenario: Scenario, api: httpx.Client) -> None:
    org = scenario.org
    by_number = org.add_waiting_call(scenario.billing, caller="+13175551234")
    either = {"type": "or", "predicates": [dimension("ani", "tel:+13175551234"), dimension("userId", scenario.agent)]}
    assert found_ids(details(api, segment_filters=[either])) == {by_number, scenario.agent_call}
    in_billing = {"type": "and", "predicates": [dimension("queueId", scenario.billing)]}
    assert found_ids(details(api, segment_filters=[either, in_billing])) == {by_number}

    two = {"type": "or", "predicates": [dimension("conversationId", scenario.waiting_call),
                                        dimension("conversationId", by_number)]}
    assert found_ids(details(api, conversation_filters=[two])) == {scenario.waiting_call, by_number}
    org.end_call(by_number)
    still_open = {"type": "and", "predicates": [dimension("conversationEnd", operator="notExists")]}
    assert found_ids(details(api, conversation_filters=[two, still_open])) == {scenario.waiting_call}
    assert found_ids(details(api, conversation_filters=[
        {"type": "and", "predicates": [dimension("conversationId", scenario.agent_call)]}])) == {scenario.agent_call}


def test_filter_clauses_and_unknown_filter_types(scenario: Scenario, api: httpx.Client) -> None:
    org = scenario.org
    by_number = org.add_waiting_call(scenario.billing, caller="+13175551234")
    nested = {"type": "and", "predicates": [dimension("mediaType", "voice")], "clauses": [
        {"type": "or", "predicates": [dimension("queueId", scenario.billing), dimension("userId", scenario.agent)]}]}
    assert found_ids(details(api, segment_filters=[nested])) == {by_number, scenario.agent_call}
    answer = api.post("/api/v2/analytics/conversations/details/query", json={
        "interval": "2020-01-01T00:00:00Z/2100-01-01T00:00:00Z",
        "segmentFilters": [{"type": "xor", "predicates": [dimension("mediaType", "voice")]}]})
    refused(answer, 400, "invalid.value")


# --- consults ----------------------------------------------------------------------------------------

def test_an_agent_leg_added_for_a_consult(scenario: Scenario, api: httpx.Client) -> None:
    org, call = scenario.org, scenario.agent_call
    other = org.add_user("Bea Backup", "bea@example.com")
    original = leg(api, call, "agent")
    earlier = zulu(dt.datetime.fromisoformat(original["startTime"]) - dt.timedelta(minutes=5))
    consult = org.add_agent_leg(call, other, held=True, started=earlier)

    agents = [p for p in api.get(f"/api/v2/conversations/{call}").json()["participants"] if p["purpose"] == "agent"]
    assert [p["id"] for p in agents] == [original["id"], consult]
    added = deserialize(agents[1], "Participant")
    assert added.user_id == other and added.end_time is None and added.calls[0].state == "connected"
    assert added.calls[0].held is True and agents[0]["calls"][0]["held"] is False
    assert agents[1]["startTime"] == earlier and min(agents, key=lambda p: p["startTime"])["id"] == consult
    assert {p["userId"] for p in org.live_participants(call, "agent")} == {scenario.agent, other}
    assert org.add_agent_leg(call, other) != consult

    transfer(api, call, consult, scenario.billing)  # the consulted agent's leg moves with the routing data
    assert org.routing_of(call)["queue"]["id"] == scenario.billing
    org.end_call(call)
    with pytest.raises(ValueError):
        org.add_agent_leg(call, other)
    with pytest.raises(ValueError):
        org.add_agent_leg(scenario.waiting_call, other, started="yesterday")


def test_a_waiting_call_can_start_earlier(scenario: Scenario, api: httpx.Client) -> None:
    an_hour_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    started = an_hour_ago.astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat()  # any offset, any precision
    call = scenario.org.add_waiting_call(scenario.support, started=started)
    conversation = api.get(f"/api/v2/conversations/{call}").json()
    assert {conversation["startTime"], *(p["startTime"] for p in conversation["participants"])} == {zulu(an_hour_ago)}
    assert details(api)[0]["conversationId"] == call  # the oldest first


# --- the same routes through the SDK's own API methods -------------------------------------------------

class SdkResponse:
    def __init__(self, response: httpx.Response) -> None:
        self.status, self.reason, self.data, self._headers = (response.status_code, response.reason_phrase,
                                                              response.text, response.headers)

    def getheaders(self) -> httpx.Headers:
        return self._headers

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self._headers.get(name, default)


def sdk_client(org: FakeOrg) -> Any:
    """An SDK ApiClient whose HTTP goes to the org through httpx.MockTransport, with a token."""
    class HttpClient(sdk.AbstractHttpClient):
        def request(self, options: Any) -> SdkResponse:
            extra = {"data": dict(options.post_params)} if options.post_params else {"json": options.body}
            with httpx.Client(transport=httpx.MockTransport(org.handle)) as client:
                answer = SdkResponse(client.request(options.method, options.url, headers=options.headers,
                                                    params=options.query_params, **extra))
            if not 200 <= answer.status <= 205:
                raise sdk.ApiException(http_resp=answer)
            return answer

    api_client = sdk.ApiClient(host=BASE)
    api_client.set_http_client(HttpClient())
    return api_client.get_client_credentials_token(org.client_id, org.client_secret)


def test_the_sdk_methods_reach_the_new_routes(scenario: Scenario) -> None:
    org = scenario.org
    api_client = sdk_client(org)
    routing, conversations = package.RoutingApi(api_client), package.ConversationsApi(api_client)

    listing = routing.get_routing_skills(name="Billing", page_size=10)
    assert sorted(s.name for s in listing.entities) == ["Billing", "Billing Escalations"]
    assert routing.get_routing_skill(scenario.skills["Spanish Support"]).state == "inactive"
    assert [lang.id for lang in routing.get_routing_languages(name="Eng").entities] == [scenario.languages["English"]]
    assert routing.get_routing_language(scenario.languages["Spanish"]).name == "Spanish"

    request = sdk.models.RoutingConversationAttributesRequest()
    request.priority, request.skill_ids = 8, [scenario.skills["Billing"]]
    request.language_id = scenario.languages["Spanish"]
    result = routing.patch_routing_conversation(scenario.waiting_call, request)
    assert result.priority == 8 and [s.id for s in result.skills] == [scenario.skills["Billing"]]
    assert result.language.id == scenario.languages["Spanish"]
    assert org.routing_of(scenario.waiting_call)["priority"] == 8

    with pytest.raises(sdk.ApiException) as refusal:
        routing.patch_routing_conversation(scenario.agent_call, request)
    assert refusal.value.status == 400 and json.loads(refusal.value.body)["code"] == NOT_IN_QUEUE

    customer = next(p for p in conversations.get_conversation(scenario.waiting_call).participants
                    if p.purpose == "customer")
    body = sdk.models.ParticipantAttributes()
    body.attributes = {"moved": "yes"}
    answer = conversations.patch_conversations_call_participant_attributes(scenario.waiting_call, customer.id, body)
    assert answer.attributes == {"moved": "yes"} == org.attributes_of(scenario.waiting_call)
    assert [r["body"] for r in org.sent("PATCH")] == [
        {"priority": 8, "skillIds": [scenario.skills["Billing"]], "languageId": scenario.languages["Spanish"]},
        {"priority": 8, "skillIds": [scenario.skills["Billing"]], "languageId": scenario.languages["Spanish"]},
        {"attributes": {"moved": "yes"}}]


# --- the command line ------------------------------------------------------------------------------

def test_help_prints_usage() -> None:
    done = subprocess.run([sys.executable, str(FAKE_ORG), "--help"], check=False, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout.startswith("usage: fake_org.py [-h] [--calls N] [--without PERMISSION]")


def test_the_demo_serves_callers_skills_and_languages_on_127_0_0_1() -> None:
    process = subprocess.Popen([sys.executable, str(FAKE_ORG), "0"], stdout=subprocess.PIPE, text=True,
                               stdin=subprocess.DEVNULL)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    try:
        printed = [lines.get(timeout=30)]
        while not printed[-1].startswith("# calls waiting in Support:"):
            printed.append(lines.get(timeout=30))
        waiting = printed[-1].split(":", 1)[1].split()
        printed += [lines.get(timeout=30) for _ in waiting]
        text = "".join(printed)
        base_url = re.search(r"http://\S+", printed[0]).group(0)
        client_id = next(line.split("=", 1)[1].strip() for line in printed if "GENESYS_CLIENT_ID=" in line)
        secret = next(line.split("=", 1)[1].strip() for line in printed if "GENESYS_CLIENT_SECRET=" in line)
        assert base_url.startswith("http://127.0.0.1:") and len(waiting) == 12

        with httpx.Client(base_url=base_url, timeout=10) as client:
            token = client.post("/oauth/token", auth=(client_id, secret), data={"grant_type": "client_credentials"})
            client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            skills = client.get("/api/v2/routing/skills").json()["entities"]
            languages = client.get("/api/v2/routing/languages").json()["entities"]
            assert {s["name"] for s in skills} == {"Billing", "Billing Escalations", "Spanish Support"}
            assert {lang["name"] for lang in languages} == {"English", "Spanish"}
            assert all(entity["id"] in text for entity in (*skills, *languages))
            found = client.post("/api/v2/analytics/conversations/details/query", json={
                "interval": "2020-01-01T00:00:00Z/2100-01-01T00:00:00Z", "segmentFilters": [
                    {"type": "and", "predicates": [dimension("ani", "tel:+13175551234")]}]}).json()["conversations"]
            assert len(found) == 1 and found[0]["conversationId"] in waiting
            callers, needs = set(), []
            for call in waiting:
                participants = client.get(f"/api/v2/conversations/{call}").json()["participants"]
                callers.add(next(p["ani"] for p in participants if p["purpose"] == "customer"))
                routing = next(p for p in participants if p["purpose"] == "acd")["conversationRoutingData"]
                needs.append(routing["priority"] != 0 or routing["skills"] or "language" in routing)
            assert len(callers) == 12 and "tel:+13175551234" in callers
            assert any(needs) and not all(needs)
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0


# --- recentTransfers, lost answers and timed events ----------------------------------------------------

class Clock:
    """Stands in for the time module inside fake_org: its monotonic time moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(fake_org, "time", clock)
    return clock


def conversation(api: httpx.Client, conversation_id: str) -> dict[str, Any]:
    """GET /api/v2/conversations/{id}, checked against Conversation (recentTransfers against TransferResponse)."""
    answer = api.get(f"/api/v2/conversations/{conversation_id}")
    assert answer.status_code == 200, answer.text
    fits(answer.json(), "Conversation")
    return answer.json()


def test_an_accepted_transfer_is_pending_in_recent_transfers_until_it_is_applied(clock: Clock) -> None:
    ids = build_scenario(transfer_delay=2)
    org, api, call = ids.org, client_for(ids.org), ids.waiting_call
    assert "recentTransfers" not in conversation(api, call)

    transfer(api, call, leg(api, call, "acd")["id"], ids.billing)

    clock.advance(1.9)
    [pending] = conversation(api, call)["recentTransfers"]
    assert pending["state"] == "Pending" and pending["transferType"] == "Unattended"
    assert (pending["initiator"], pending["modifiedBy"], pending["destination"]) == ({}, {}, {})
    model = deserialize(pending, "TransferResponse")
    assert model.id == pending["id"] and model.date_issued is not None
    assert org.queue_of(call) == ids.support
    clock.advance(0.1)
    [complete] = conversation(api, call)["recentTransfers"]
    assert {**pending, "state": "Complete"} == complete == org.recent_transfers(call)[0]
    assert org.queue_of(call) == ids.billing


@pytest.mark.parametrize("first", ["answered", "ended"])
def test_a_transfer_whose_leg_ended_first_is_failed_in_recent_transfers(clock: Clock, first: str) -> None:
    ids = build_scenario(transfer_delay=2)
    org, api, call = ids.org, client_for(ids.org), ids.waiting_call
    transfer(api, call, leg(api, call, "acd")["id"], ids.billing)
    org.answer(call, ids.agent) if first == "answered" else org.end_call(call)
    clock.advance(2)

    assert [t["state"] for t in conversation(api, call)["recentTransfers"]] == ["Failed"]
    assert org.queue_of(call) is None and len(org.transfers) == 1
    assert [p["userId"] for p in org.live_participants(call, "agent")] == ([ids.agent] if first == "answered" else [])


def test_recent_transfers_keeps_the_last_twenty(scenario: Scenario, api: httpx.Client) -> None:
    org, call = scenario.org, scenario.waiting_call
    for n in range(23):
        transfer(api, call, leg(api, call, "acd")["id"], (scenario.billing, scenario.support)[n % 2])

    recent = conversation(api, call)["recentTransfers"]
    assert len(org.transfers) == 23 and len(recent) == 20 and len({t["id"] for t in recent}) == 20
    assert all(t["state"] == "Complete" for t in recent)
    assert [t["dateIssued"] for t in recent] == sorted(t["dateIssued"] for t in recent)  # oldest first


def test_an_org_can_keep_queue_transfers_out_of_recent_transfers(clock: Clock) -> None:
    ids = build_scenario(show_recent_transfers=False, transfer_delay=2)
    org, api, call = ids.org, client_for(ids.org), ids.waiting_call
    transfer(api, call, leg(api, call, "acd")["id"], ids.billing)
    assert "recentTransfers" not in conversation(api, call) and org.recent_transfers(call) == []
    clock.advance(2)
    assert org.queue_of(call) == ids.billing and "recentTransfers" not in conversation(api, call)


LOST_ANSWERS = {  # how the answer to a processed transfer is lost → what httpx raises in the client
    "503": ({"status": 503}, None),
    "drop": ({"action": "drop"}, httpx.RemoteProtocolError),
    "timeout": ({"action": "timeout", "delay": 1.0}, httpx.ReadTimeout),
    "undecodable": ({"status": 202, "headers": {"Content-Encoding": "gzip"}, "body": "not gzip"}, httpx.DecodingError),
}


@pytest.mark.parametrize("how", LOST_ANSWERS)
@pytest.mark.parametrize("over", ["MockTransport", "HTTP"])
def test_a_processed_transfer_whose_answer_is_lost_still_moves_the_call(served, how: str, over: str) -> None:
    ids = build_scenario()
    org, call = ids.org, ids.waiting_call
    api = client_for(org)
    if over == "HTTP":  # the same token, over a real connection
        api = httpx.Client(base_url=served(org), headers={"Authorization": api.headers["Authorization"]}, timeout=0.5)
    fault, raised = LOST_ANSWERS[how]
    org.inject("POST", "/replace/queue", process=True, **{"status": 503, **fault})
    path = f"/api/v2/conversations/{call}/participants/{leg(api, call, 'acd')['id']}/replace/queue"

    if raised is None:
        assert api.post(path, json={"queueId": ids.billing}).status_code == 503
    else:
        with pytest.raises(raised):
            api.post(path, json={"queueId": ids.billing})

    assert org.transfers == [{"conversationId": call, "participantId": org.transfers[0]["participantId"],
                              "queueId": ids.billing}]
    assert org.queue_of(call) == ids.billing and len(org.sent("POST", "/replace/queue")) == 1
    assert leg(api, call, "acd")["queueId"] == ids.billing  # the fault was used up: the next answers are normal


def test_an_undecodable_answer_without_process_changes_nothing(scenario: Scenario, api: httpx.Client) -> None:
    org, call = scenario.org, scenario.waiting_call
    org.inject("POST", "/replace/queue", 202, headers={"Content-Encoding": "gzip"}, body="not gzip")
    with pytest.raises(httpx.DecodingError):
        api.post(f"/api/v2/conversations/{call}/participants/{leg(api, call, 'acd')['id']}/replace/queue",
                 json={"queueId": scenario.billing})
    assert org.transfers == [] and org.queue_of(call) == scenario.support


def test_a_timed_event_happens_at_the_first_request_after_its_moment(clock: Clock) -> None:
    ids = build_scenario()
    org, api, call = ids.org, client_for(ids.org), ids.waiting_call
    happened: list[float] = []
    org.at(1, lambda o: (happened.append(clock.now), o.answer(call, ids.agent)))
    started = clock.now
    clock.advance(0.9)
    assert leg(api, call, "acd") and happened == []  # not yet
    clock.advance(0.2)
    assert happened == []  # nothing was asked since: it waits for a request

    assert [p["userId"] for p in org.live_participants(call, "agent")] == [ids.agent]  # a look-up counts
    assert happened == [pytest.approx(started + 1.1)]
    conversation(api, call)
    assert len(happened) == 1  # once


@pytest.mark.parametrize("answered_after, transfer_state, queue", [(1.9, "Failed", None), (2.1, "Complete", "billing")])
def test_timed_events_and_delayed_transfers_happen_in_time_order(clock: Clock, answered_after: float,
                                                                 transfer_state: str, queue: str | None) -> None:
    ids = build_scenario(transfer_delay=2)
    org, api, call = ids.org, client_for(ids.org), ids.waiting_call
    transfer(api, call, leg(api, call, "acd")["id"], ids.billing)
    org.at(answered_after, lambda o: o.answer(call, ids.agent))
    clock.advance(3)  # both are due by the next request, which applies them in the order they were due

    assert [t["state"] for t in conversation(api, call)["recentTransfers"]] == [transfer_state]
    agent = org.live_participants(call, "agent")[0]
    assert agent["userId"] == ids.agent and agent["queueId"] == (ids.billing if queue else ids.support)


def test_clear_faults_drops_faults_and_events_not_yet_used(scenario: Scenario, api: httpx.Client) -> None:
    org, call = scenario.org, scenario.waiting_call
    org.inject("GET", "/api/v2/conversations/", 503, times=None)
    org.when("GET", "/api/v2/conversations/", lambda o: o.end_call(call), times=None)
    org.at(0.0, lambda o: o.end_call(call))
    org.clear_faults()
    assert leg(api, call, "acd")["queueId"] == scenario.support and "endTime" not in org.conversations[call]


# --- callbacks waiting in queues ----------------------------------------------------------------------

CALLBACKS = "/api/v2/conversations/callbacks"


def replace_callback(api: httpx.Client, conversation_id: str, participant_id: str, body: Any) -> httpx.Response:
    fits(body, "TransferRequest")
    return api.post(f"{CALLBACKS}/{conversation_id}/participants/{participant_id}/replace", json=body)


def patch_callback(api: httpx.Client, body: Any) -> httpx.Response:
    return api.patch(CALLBACKS, json=body)


def test_a_waiting_callback_has_callbacks_where_a_call_has_calls(scenario: Scenario, api: httpx.Client) -> None:
    org = scenario.org
    routed = org.add_waiting_callback(scenario.support, caller="+13175550000", priority=4,
                                      skill_ids=[scenario.skills["Billing"]], language_id=scenario.languages["English"])
    scheduled = org.add_waiting_callback(scenario.billing, scheduled=True)

    customer, acd = conversation(api, routed)["participants"]
    assert "calls" not in customer and "calls" not in acd and "ani" not in customer
    assert customer["purpose"] == "customer" and customer["address"] == "tel:+13175550000"
    assert customer["callbacks"][0]["state"] == "connected" == CALLBACK_ROUTED_STATE
    assert customer["callbacks"][0]["callbackNumbers"] == acd["callbacks"][0]["callbackNumbers"] == ["+13175550000"]
    assert (acd["purpose"], acd["queueId"], acd["queueName"]) == ("acd", scenario.support, "Support")
    assert acd["conversationRoutingData"] == org.routing_of(routed) and org.routing_of(routed)["priority"] == 4
    assert deserialize(acd, "Participant").callbacks[0].callback_numbers == ["+13175550000"]

    waiting = leg(api, scheduled, "acd")["callbacks"][0]
    assert waiting["state"] == "scheduled" and "connectedTime" not in waiting
    assert dt.datetime.fromisoformat(waiting["callbackScheduledTime"]) > dt.datetime.now(dt.timezone.utc)
    assert (org.queue_of(routed), org.queue_of(scheduled)) == (scenario.support, scenario.billing)
    assert [p["id"] for p in org.live_participants(routed, "acd")] == [acd["id"]]
    with pytest.raises(ValueError, match="E.164"):
        org.add_waiting_callback(scenario.support, caller="5550199")


def test_a_callback_leg_is_live_until_its_callback_is_disconnected_or_terminated(scenario: Scenario) -> None:
    org = scenario.org
    callback = org.add_waiting_callback(scenario.support)
    org.live_participants(callback, "acd")[0]["callbacks"][0]["state"] = "terminated"  # no endTime, yet not live
    assert org.queue_of(callback) is None and org.routing_of(callback) is None


def test_an_agent_answers_a_routed_callback_on_a_callbacks_leg(scenario: Scenario, api: httpx.Client) -> None:
    org = scenario.org
    routed, scheduled = org.add_waiting_callback(scenario.support), org.add_waiting_callback(scenario.support,
                                                                                             scheduled=True)
    org.answer(routed, scenario.agent)
    agent = leg(api, routed, "agent")
    assert "calls" not in agent and agent["callbacks"][0]["state"] == "connected" and agent["userId"] == scenario.agent
    assert org.queue_of(routed) is None
    assert [p["callbacks"][0]["state"] for p in conversation(api, routed)["participants"]] == [
        "connected", "disconnected", "connected"]
    with pytest.raises(ValueError, match="scheduled"):
        org.answer(scheduled, scenario.agent)
    org.end_call(routed)
    assert org.live_participants(routed, "agent") == [] and org.live_participants(routed, "customer") == []


def test_analytics_shows_callback_sessions_and_filters_them_by_media_type(scenario: Scenario,
                                                                          api: httpx.Client) -> None:
    org = scenario.org
    routed, scheduled = org.add_waiting_callback(scenario.support), org.add_waiting_callback(scenario.support,
                                                                                             scheduled=True)
    voice = {scenario.waiting_call, scenario.agent_call}

    def media(*types: str) -> list[dict[str, Any]]:
        return [{"type": "or", "predicates": [dimension("mediaType", t) for t in types]}]

    assert found_ids(details(api, segment_filters=media("callback"))) == {routed, scheduled}
    assert found_ids(details(api, segment_filters=media("voice"))) == voice
    assert found_ids(details(api, segment_filters=media("voice", "callback"))) == voice | {routed, scheduled}
    waiting = [{"type": "and", "predicates": [
        dimension("mediaType", "callback"), dimension("queueId", scenario.support),
        dimension("segmentEnd", operator="notExists"), dimension("purpose", "acd")]}]
    assert found_ids(details(api, segment_filters=waiting)) == {routed, scheduled}

    answer = api.get("/api/v2/analytics/conversations/details", params={"id": f"{routed},{scheduled}"})
    fits(answer.json(), "AnalyticsConversationWithoutAttributesMultiGetResponse")
    sessions = {c["conversationId"]: [p["sessions"][0] for p in c["participants"]]
                for c in answer.json()["conversations"]}
    assert {s["mediaType"] for ss in sessions.values() for s in ss} == {"callback"}
    assert all(s["callbackNumbers"] == ["+15550199"] and "ani" not in s for ss in sessions.values() for s in ss)
    assert "callbackScheduledTime" in sessions[scheduled][1] and "callbackScheduledTime" not in sessions[routed][1]


def test_a_routed_callback_moves_through_the_callbacks_replace_endpoint(clock: Clock) -> None:
    ids = build_scenario(transfer_delay=2)
    org, api = ids.org, client_for(ids.org)
    callback = org.add_waiting_callback(ids.support, priority=9, skill_ids=[ids.skills["Billing"]])
    old = leg(api, callback, "acd")

    answer = replace_callback(api, callback, old["id"], {"queueId": ids.billing, "transferType": "Unattended"})

    assert answer.status_code == 202 and answer.content == b""
    assert org.transfers == [{"conversationId": callback, "participantId": old["id"], "queueId": ids.billing,
                              "media": "callback"}]
    assert [t["state"] for t in conversation(api, callback)["recentTransfers"]] == ["Pending"]
    assert org.queue_of(callback) == ids.support  # not yet: applied after transfer_delay
    clock.advance(2)
    participants = conversation(api, callback)["participants"]
    assert conversation(api, callback)["recentTransfers"][0]["state"] == "Complete"
    ended = next(p for p in participants if p["id"] == old["id"])
    assert ended["callbacks"][0]["state"] == "disconnected" and "endTime" in ended
    new = leg(api, callback, "acd")
    assert new["queueId"] == ids.billing and new["callbacks"][0]["state"] == "connected" and "calls" not in new
    assert new["callbacks"][0]["callbackNumbers"] == ["+15550199"]
    billing = {"id": ids.billing, "selfUri": f"/api/v2/routing/queues/{ids.billing}"}
    assert new["conversationRoutingData"] == {**old["conversationRoutingData"], "queue": billing}
    assert org.queue_of(callback) == ids.billing


def test_a_voice_transfer_is_recorded_without_a_media_key(scenario: Scenario, api: httpx.Client) -> None:
    call = scenario.waiting_call
    transfer(api, call, leg(api, call, "acd")["id"], scenario.billing)
    assert [set(t) for t in scenario.org.transfers] == [{"conversationId", "participantId", "queueId"}]


def test_the_callbacks_replace_endpoint_refuses_what_it_does_not_move(scenario: Scenario, api: httpx.Client) -> None:
    org = scenario.org
    routed, scheduled = org.add_waiting_callback(scenario.support), org.add_waiting_callback(scenario.support,
                                                                                             scheduled=True)
    acd, customer = leg(api, routed, "acd")["id"], leg(api, routed, "customer")["id"]
    to_billing = {"queueId": scenario.billing}

    answer = replace_callback(api, scheduled, leg(api, scheduled, "acd")["id"], to_billing)
    refused(answer, 400, CALLBACK_NOT_OFFERED[0])
    assert answer.json()["message"] == CALLBACK_NOT_OFFERED[1]
    assert "PATCH /api/v2/conversations/callbacks" in CALLBACK_NOT_OFFERED[1]
    refused(replace_callback(api, routed, customer, to_billing), 400, "bad.request")
    refused(replace_callback(api, routed, acd, {"queueId": scenario.support}), 400,
            "conversations.error.transfer.same.party")
    refused(replace_callback(api, routed, acd, {"queueId": "no-such-queue"}), 400,
            "conversations.error.queue.not.found")
    refused(replace_callback(api, routed, acd, {"userId": scenario.agent}), 400, "bad.request")  # not to a queue
    refused(api.post(f"{CALLBACKS}/{routed}/participants/{acd}/replace", json={"queueId": scenario.billing,
                                                                              "wrapupCode": "x"}), 400, "bad.request")
    refused(replace_callback(api, routed, "nobody", to_billing), 404, "not.found")
    voice = scenario.waiting_call
    refused(replace_callback(api, voice, leg(api, voice, "acd")["id"], to_billing), 400, "bad.request")
    # and a call's replace/queue does not move a callback
    answer = api.post(f"/api/v2/conversations/{routed}/participants/{acd}/replace/queue", json=to_billing)
    refused(answer, 400, CALLBACK_NOT_A_CALL[0])
    assert answer.json()["message"] == CALLBACK_NOT_A_CALL[1]
    org.permissions -= set(TRANSFER_PERMISSIONS)
    refused(replace_callback(api, routed, acd, to_billing), 403, "missing.any.permissions")
    assert org.transfers == [] and org.queue_of(routed) == org.queue_of(scheduled) == scenario.support


def test_patch_callbacks_moves_a_scheduled_callback_at_once(scenario: Scenario, api: httpx.Client) -> None:
    org = scenario.org
    scheduled = org.add_waiting_callback(scenario.support, scheduled=True, priority=3)
    before = leg(api, scheduled, "acd")
    body = {"conversationId": scheduled, "queueId": scenario.billing}
    fits(body, "PatchCallbackRequest")

    answer = patch_callback(api, body)

    assert answer.status_code == 200, answer.text
    model = fits(answer.json(), "PatchCallbackResponse")
    assert model.conversation.id == scheduled
    assert [(i.type, i.id) for i in model.callback_identifiers] == [("ACD", before["callbacks"][0]["id"])]
    after = leg(api, scheduled, "acd")
    assert after["id"] == before["id"] and after["callbacks"] == before["callbacks"]  # the same leg, still scheduled
    assert (after["queueId"], after["queueName"]) == (scenario.billing, "Billing Overflow")
    assert after["conversationRoutingData"] == {**before["conversationRoutingData"],
                                                "queue": {"id": scenario.billing,
                                                          "selfUri": f"/api/v2/routing/queues/{scenario.billing}"}}
    assert org.queue_of(scheduled) == scenario.billing
    assert org.callback_changes == [{"conversationId": scheduled, "body": body}]
    assert org.transfers == [{"conversationId": scheduled, "participantId": before["id"], "queueId": scenario.billing,
                              "media": "callback", "scheduled": True}]
    assert "recentTransfers" not in conversation(api, scheduled)


def test_patch_callbacks_can_be_made_to_replace_the_participant(scenario: Scenario, api: httpx.Client,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fake_org, "CALLBACK_PATCH_REPLACES_PARTICIPANT", True)
    org = scenario.org
    scheduled = org.add_waiting_callback(scenario.support, scheduled=True)
    before = leg(api, scheduled, "acd")
    answer = patch_callback(api, {"conversationId": scheduled, "queueId": scenario.billing})
    after = leg(api, scheduled, "acd")
    assert after["id"] != before["id"] and after["callbacks"][0]["state"] == "scheduled"
    assert answer.json()["callbackIdentifiers"][0]["id"] == after["callbacks"][0]["id"]
    assert org.queue_of(scheduled) == scenario.billing and org.transfers[0]["participantId"] == before["id"]


def test_patch_callbacks_refuses_what_is_not_a_scheduled_callback(scenario: Scenario, api: httpx.Client) -> None:
    org = scenario.org
    routed, scheduled = org.add_waiting_callback(scenario.support), org.add_waiting_callback(scenario.support,
                                                                                             scheduled=True)
    answer = patch_callback(api, {"conversationId": routed, "queueId": scenario.billing})
    refused(answer, 400, CALLBACK_NOT_SCHEDULED[0])
    assert answer.json()["message"] == CALLBACK_NOT_SCHEDULED[1]
    refused(patch_callback(api, {"conversationId": scenario.waiting_call, "queueId": scenario.billing}), 400,
            CALLBACK_NOT_SCHEDULED[0])
    refused(patch_callback(api, {"conversationId": "nothing", "queueId": scenario.billing}), 404, "not.found")
    refused(patch_callback(api, {"queueId": scenario.billing}), 400, "bad.request")
    refused(patch_callback(api, {"conversationId": scheduled, "queueId": "no-such-queue"}), 400,
            "conversations.error.queue.not.found")
    refused(patch_callback(api, {"conversationId": scheduled, "agentId": scenario.agent}), 400, "bad.request")
    refused(patch_callback(api, {"conversationId": scheduled, "queueName": "Billing Overflow"}), 400, "bad.request")
    assert "conversation:callback:edit" in ALL_PERMISSIONS
    org.permissions.discard("conversation:callback:edit")
    refused(patch_callback(api, {"conversationId": scheduled, "queueId": scenario.billing}), 403,
            "missing.any.permissions")
    assert org.transfers == org.callback_changes == [] and org.queue_of(scheduled) == scenario.support


def test_participant_data_on_a_callback(scenario: Scenario, api: httpx.Client) -> None:
    org = scenario.org
    callback = org.add_waiting_callback(scenario.support)
    customer = leg(api, callback, "customer")["id"]
    body = {"attributes": {"moved": "yes"}}
    fits(body, "ParticipantAttributes")
    answer = api.patch(f"{CALLBACKS}/{callback}/participants/{customer}/attributes", json=body)
    assert answer.status_code == 202 and fits(answer.json(), "ParticipantAttributes").attributes == {"moved": "yes"}
    assert org.attributes_of(callback) == {"moved": "yes"}
    refused(api.patch(f"{CALLBACKS}/{callback}/participants/{customer}/attributes", json={"attributes": {"n": 1}}),
            400, "bad.request")


def test_the_sdk_callback_methods_reach_the_callback_routes(scenario: Scenario) -> None:
    org = scenario.org
    conversations = package.ConversationsApi(sdk_client(org))
    routed, scheduled = org.add_waiting_callback(scenario.support), org.add_waiting_callback(scenario.support,
                                                                                             scheduled=True)
    acd = next(p for p in conversations.get_conversation(routed).participants if p.purpose == "acd")
    assert acd.callbacks[0].state == CALLBACK_ROUTED_STATE and not acd.calls

    request = sdk.models.TransferRequest()
    request.queue_id = scenario.billing
    assert conversations.post_conversations_callback_participant_replace(routed, acd.id, request) is None
    assert org.queue_of(routed) == scenario.billing

    change = sdk.models.PatchCallbackRequest()
    change.conversation_id, change.queue_id = scheduled, scenario.billing
    assert conversations.patch_conversations_callbacks(change).conversation.id == scheduled
    assert org.queue_of(scheduled) == scenario.billing

    body = sdk.models.ParticipantAttributes()
    body.attributes = {"moved": "yes"}
    answer = conversations.patch_conversations_callback_participant_attributes(routed, acd.id, body)
    assert answer.attributes == {"moved": "yes"}
    assert [t["media"] for t in org.transfers] == ["callback", "callback"]
