"""Every request the script sends, and every answer of the fake org, fits the SDK's models.

The SDK's models are generated from Genesys Cloud's own API definition, so a body with a key the
model lacks, or a value its enums refuse, is a body the real API would not accept (or a fake that
lies about the real API).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

import transfer_call
from conftest import Scenario

sdk = transfer_call.load_sdk()
PRIMITIVES = {"str", "int", "float", "bool", "datetime", "date", "object", "LocalDateTime"}

REQUEST_MODELS = [  # (method, path pattern, SDK model of the body), as in the SDK's API modules
    ("POST", r"/api/v2/conversations/[^/]+/participants/[^/]+/replace/queue", "TransferToQueueRequest"),
    ("POST", r"/api/v2/analytics/conversations/details/query", "ConversationQuery"),
    ("POST", r"/api/v2/users/search", "UserSearchRequest"),
    ("PATCH", r"/api/v2/routing/conversations/[^/]+", "RoutingConversationAttributesRequest"),
    ("PATCH", r"/api/v2/conversations/calls/[^/]+/participants/[^/]+/attributes", "ParticipantAttributes"),
    ("POST", r"/api/v2/conversations/callbacks/[^/]+/participants/[^/]+/replace", "TransferRequest"),
    ("PATCH", r"/api/v2/conversations/callbacks", "PatchCallbackRequest"),
    ("PATCH", r"/api/v2/conversations/callbacks/[^/]+/participants/[^/]+/attributes", "ParticipantAttributes"),
]
RESPONSE_MODELS = [
    ("GET", r"/api/v2/conversations/[^/]+", "Conversation"),
    ("POST", r"/api/v2/analytics/conversations/details/query", "AnalyticsConversationQueryResponse"),
    ("GET", r"/api/v2/analytics/conversations/details", "AnalyticsConversationWithoutAttributesMultiGetResponse"),
    ("GET", r"/api/v2/routing/queues/[^/]+", "Queue"),
    ("GET", r"/api/v2/routing/queues", "QueueEntityListing"),
    ("POST", r"/api/v2/users/search", "UsersSearchResponse"),
    ("PATCH", r"/api/v2/routing/conversations/[^/]+", "RoutingConversationAttributesResponse"),
    ("PATCH", r"/api/v2/conversations/calls/[^/]+/participants/[^/]+/attributes", "ParticipantAttributes"),
    ("GET", r"/api/v2/routing/skills/[^/]+", "RoutingSkill"),
    ("GET", r"/api/v2/routing/skills", "SkillEntityListing"),
    ("GET", r"/api/v2/routing/languages/[^/]+", "Language"),
    ("GET", r"/api/v2/routing/languages", "LanguageEntityListing"),
    ("PATCH", r"/api/v2/conversations/callbacks", "PatchCallbackResponse"),
    ("PATCH", r"/api/v2/conversations/callbacks/[^/]+/participants/[^/]+/attributes", "ParticipantAttributes"),
]


def unknown_keys(data: Any, klass: str, where: str = "$") -> list[str]:
    """JSON keys (recursively) that the SDK model does not define."""
    if data is None or klass in PRIMITIVES:
        return []
    if klass.startswith("list["):
        return [k for i, item in enumerate(data) for k in unknown_keys(item, klass[5:-1], f"{where}[{i}]")]
    if klass.startswith("dict("):
        inner = re.match(r"dict\(([^,]*), (.*)\)", klass).group(2)
        return [k for key, item in data.items() for k in unknown_keys(item, inner, f"{where}.{key}")]
    model = getattr(sdk.models, klass)()
    by_json = {json_name: attr for attr, json_name in model.attribute_map.items()}
    problems = []
    for key, value in data.items():
        if key not in by_json:
            problems.append(f"{where}.{key} (not in {klass})")
        else:
            problems += unknown_keys(value, model.swagger_types[by_json[key]], f"{where}.{key}")
    return problems


def deserialize(data: Any, klass: str) -> Any:
    """The SDK's own deserializer, which also enforces the models' allowed enum values."""
    return sdk.ApiClient(host="http://127.0.0.1")._ApiClient__deserialize(data, klass)


def model_for(table: list[tuple[str, str, str]], method: str, path: str) -> str | None:
    return next((klass for m, pattern, klass in table if m == method and re.fullmatch(pattern, path)), None)


@pytest.fixture
def traffic(scenario: Scenario, run_inprocess) -> Scenario:
    """Run every kind of request once: by user id, by email, by conversation, by queue name, a dry run, a bulk move."""
    org = scenario.org
    assert run_inprocess(org, "--user-email", "ada@example.com", "--queue-id", scenario.billing).code == 0
    assert run_inprocess(org, "--conversation-id", scenario.waiting_call, "--queue-name", "Billing Overflow").code == 0
    org.add_agent_call(scenario.agent, scenario.support)
    assert run_inprocess(org, "--user-id", scenario.agent, "--queue-id", scenario.billing, "--dry-run").code == 0
    for _ in range(3):
        org.add_waiting_call(scenario.support)
    assert run_inprocess(org, "--from-queue", "Support", "--queue-id", scenario.billing).code == 0
    routed = org.add_waiting_call(scenario.support)
    assert run_inprocess(org, "--conversation-id", routed, "--queue-id", scenario.billing, "--priority", "5",
                         "--skill", "Billing", "--skill", scenario.skills["Billing Escalations"], "--language",
                         "English", "--attribute", "transferReason=conformance").code == 0
    assert run_inprocess(org, "--conversation-id", routed, "--language", scenario.languages["Spanish"],
                         "--no-skills").code == 0
    org.add_waiting_call(scenario.support, caller="+13175551234")
    assert run_inprocess(org, "--caller", "+1 (317) 555-1234", "--queue-id", scenario.billing).code == 0
    org.add_waiting_callback(scenario.support)
    org.add_waiting_callback(scenario.support, scheduled=True)
    assert run_inprocess(org, "--from-queue", "Support", "--media", "callback", "--queue-id", scenario.billing,
                         "--attribute", "transferReason=conformance").code == 0
    return scenario


def test_every_request_body_fits_its_sdk_model(traffic: Scenario) -> None:
    checked = set()
    for request in traffic.org.requests:
        if request["path"] == "/oauth/token":
            assert request["body"] == {"grant_type": "client_credentials"}
            assert request["authorization"].startswith("Basic ")
            continue
        assert request["authorization"].startswith("Bearer ")
        klass = model_for(REQUEST_MODELS, request["method"], request["path"])
        if request["method"] == "GET":
            assert request["body"] is None
            continue
        assert klass, f"no SDK model known for {request['method']} {request['path']}"
        assert unknown_keys(request["body"], klass) == []
        deserialize(request["body"], klass)  # raises on values outside the model's enums
        checked.add(klass)
    assert checked == {klass for _, _, klass in REQUEST_MODELS}


def test_the_transfer_body_reads_back_as_a_blind_transfer_to_the_queue(traffic: Scenario) -> None:
    [first, *_] = traffic.org.sent("POST", "/replace/queue")
    model = deserialize(first["body"], "TransferToQueueRequest")
    assert model.queue_id == traffic.billing and model.transfer_type in (None, "Unattended")


def test_every_fake_answer_fits_its_sdk_model_with_the_fields_the_script_reads(traffic: Scenario) -> None:
    org = traffic.org
    token = org.issued_tokens[-1]
    replayed = set()
    for request in list(org.requests):
        klass = model_for(RESPONSE_MODELS, request["method"], request["path"])
        if klass is None:
            continue
        reply = org.respond(request["method"], request["path"] + (
            "?" + "&".join(f"{k}={v}" for k, v in request["query"].items()) if request["query"] else ""),
            {"authorization": f"Bearer {token}", "content-type": "application/json"},
            json.dumps(request["body"]).encode() if request["body"] else b"")
        assert reply.status in (200, 202), reply.body
        assert unknown_keys(reply.body, klass) == []
        model = deserialize(reply.body, klass)
        replayed.add(klass)
        if klass == "Conversation":
            assert model.id and model.participants
            for participant in model.participants:
                assert participant.id and participant.purpose and participant.start_time
                assert all(call.state for call in participant.calls or participant.callbacks)
        elif klass == "AnalyticsConversationWithoutAttributesMultiGetResponse":
            assert all(c.conversation_id and c.participants for c in model.conversations)
        elif klass == "AnalyticsConversationQueryResponse":
            assert all(c.conversation_id and c.conversation_start for c in model.conversations or [])
        elif klass == "QueueEntityListing":
            assert all(q.id and q.name for q in model.entities)
        elif klass == "UsersSearchResponse":
            assert all(u.id and u.email for u in model.results)
        elif klass == "Queue":
            assert model.id and model.name
        elif klass == "RoutingConversationAttributesResponse":
            assert model.priority is not None and all(s.id for s in model.skills or [])
        elif klass in ("SkillEntityListing", "LanguageEntityListing"):
            assert all(e.id and e.name and e.state for e in model.entities)
        elif klass in ("RoutingSkill", "Language"):
            assert model.id and model.name and model.state
    assert replayed == {klass for _, _, klass in RESPONSE_MODELS}


def test_error_answers_are_error_bodies(scenario: Scenario) -> None:
    reply = scenario.org.respond("GET", "/api/v2/conversations/x", {}, b"")
    assert reply.status == 401 and unknown_keys(reply.body, "ErrorBody") == []
    assert reply.headers["ININ-Correlation-Id"] == reply.body["contextId"]


def test_user_context_endpoints_refuse_client_credentials_and_the_script_never_calls_them(
        scenario: Scenario, run_inprocess) -> None:
    org = scenario.org
    user_context = ("/api/v2/conversations", "/api/v2/conversations/calls", "/api/v2/users/me")
    assert run_inprocess(org, "--user-id", scenario.agent, "--queue-id", scenario.billing).code == 0
    assert [r for r in org.requests if r["path"] in user_context] == []
    token = org.issued_tokens[-1]
    for path in user_context:
        reply = org.respond("GET", path, {"authorization": f"Bearer {token}"}, b"")
        assert reply.status == 400 and "requires a user context" in reply.body["message"]


def test_the_documented_sample_role_fits_the_sdk_role_model() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "how-it-works.md").read_text()
    role = json.loads(doc.split("```json\n", 1)[1].split("```", 1)[0])
    assert unknown_keys(role, "DomainOrganizationRoleCreate") == []
    granted = {f"{p['domain']}:{p['entityName']}:{action}" for p in role["permissionPolicies"] for action in p["actionSet"]}
    assert granted == {"conversation:communication:view", "conversation:communication:blindTransferQueue",
                       "analytics:conversationDetail:view", "routing:queue:view", "directory:user:view",
                       "routing:conversation:edit", "routing:skill:view"}
