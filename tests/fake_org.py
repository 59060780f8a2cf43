"""A fake Genesys Cloud org that answers the real paths with the real JSON shapes.

Shapes follow the SDK's models (Conversation, Participant, Call, Callback, ConversationRoutingData,
AnalyticsConversationQueryResponse, QueueEntityListing, SkillEntityListing, LanguageEntityListing,
RoutingConversationAttributesResponse, ParticipantAttributes, UsersSearchResponse, TransferRequest,
PatchCallbackRequest, PatchCallbackResponse, ErrorBody);
semantics follow ../shared/genesys-api.md: client-credentials tokens with an expiry, per-client
permissions (403 missing.any.permissions), a rolling rate limit per token with inin-ratelimit-*
headers and 429 + Retry-After, the transfer answered 202 and applied asynchronously (carrying the
call's priority, skills and language), routing changes and participant data on a live call,
analytics as a lagging candidate list, the conversation's recentTransfers (TransferResponse: Pending
until the transfer is applied, then Complete, or Failed when the leg or call ended first), and the
user-context endpoints refusing client-credentials tokens.

Callbacks wait in queues too (add_waiting_callback): their legs carry callbacks[] where a call's carry
calls[], analytics shows their sessions with mediaType "callback", a routed one moves with the
callbacks replace endpoint (asynchronously, like a call's transfer) and a scheduled one with
PATCH /api/v2/conversations/callbacks (at once). What is unverified about them is in the CALLBACK_*
constants.

Use it in-process with `httpx.MockTransport(org.handle)`, or over HTTP with `serve(org)`.
Faults (`org.inject`) and scripted events (`org.when`) are matched before a request is handled; a
fault with process=True is handled for real first, so its answer is lost (a 5xx, a dropped
connection, a hang, a body that cannot be decoded) while its effect stands. Timed events
(`org.at`) happen in time order with delayed transfers, at the first request after their moment.
A request hold (`org.hold_requests`) keeps matching requests on their way in, unhandled, until the
test releases them, while the org answers every other request: a worker in the middle of its call,
a run kept busy. (`org.hold(conversation_id)` is another thing: an agent putting the call on hold.)
"""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import copy
import dataclasses
import datetime as dt
import http.server
import itertools
import json
import math
import os
import queue
import random
import re
import secrets
import select
import socket
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx

ALL_PERMISSIONS = frozenset({
    "conversation:communication:view",
    "conversation:communication:blindTransferQueue",
    "analytics:conversationDetail:view",
    "analytics:queueObservation:view",
    "routing:queue:view",
    "directory:user:view",
    "routing:skill:view",
    "routing:conversation:edit",
    "conversation:callback:edit",
})
TRANSFER_PERMISSIONS = ("conversation:communication:blindTransfer", "conversation:communication:blindTransferQueue")
TRANSFER_BODY_KEYS = {"transferType", "keepInternalMessageAlive", "queueId", "queueName"}
# RoutingConversationAttributesRequest's JSON names; the fake acts on the first three and refuses
# the others (400) rather than pretend it applied them.
ROUTING_BODY_KEYS = frozenset({"priority", "skillIds", "languageId",
                               "skillExpression", "labelId", "requestScoredAgents"})
ROUTING_BODY_MODELLED = frozenset({"priority", "skillIds", "languageId"})  # FakeOrg.routing_modelled may add
# skillExpression: tests/test_tables.py adds a routing field for it at test time
PRIORITY_LIMIT = 25_000_000  # |priority| at most this, as the SDK model enforces
RECENT_TRANSFERS = 20  # a conversation's recentTransfers keeps the last 20, as Genesys does
# The error code of a routing PATCH on a call not waiting in a queue is unverified (expect 400 or
# 404): one place to change it.
NOT_IN_QUEUE = "conversation.not.in.queue"
# Callbacks. Each unverified choice is one constant here.
CALLBACK_ROUTED_STATE = "connected"  # a routed callback's acd leg while it waits (unverified)
CALLBACK_SCHEDULED_STATE = "scheduled"  # a scheduled callback's acd leg until it is offered
CALLBACK_SCHEDULED_AHEAD = dt.timedelta(hours=1)  # add_waiting_callback(scheduled=True) is due this far ahead
ENDED_STATES = frozenset({"disconnected", "terminated"})  # a callbacks[] leg in these states is no longer live
# TransferRequest's JSON names, the body of POST .../callbacks/{id}/participants/{id}/replace; the fake
# moves callbacks to a queue only and refuses the keys that name another target (400)
CALLBACK_TRANSFER_BODY_KEYS = frozenset({"transferType", "keepInternalMessageAlive", "userId", "address",
                                         "userName", "queueId", "voicemail"})
CALLBACK_TRANSFER_MODELLED = frozenset({"transferType", "keepInternalMessageAlive", "queueId"})
# PatchCallbackRequest's JSON names; the fake acts on these two and refuses the others (400)
CALLBACK_PATCH_BODY_KEYS = frozenset({"conversationId", "queueId", "agentId", "callbackScheduledTime", "countryCode",
                                      "callbackNumbers", "validateCallbackNumbers",
                                      "customerFirstCallbackDeliveryMode"})
CALLBACK_PATCH_MODELLED = frozenset({"conversationId", "queueId"})
# (code, message) of the refusals, unverified: the replace endpoint on a scheduled callback, the
# PATCH on a callback that is not scheduled, and a call's replace/queue on a callback's leg
CALLBACK_NOT_OFFERED = ("bad.request", "The callback has not been offered yet: a callback not yet offered is "
                                       "changed with PATCH /api/v2/conversations/callbacks")
CALLBACK_NOT_SCHEDULED = ("bad.request", "The callback is not scheduled: only a scheduled callback is changed with "
                                         "PATCH /api/v2/conversations/callbacks")
CALLBACK_NOT_A_CALL = ("bad.request", "The participant is on a callback, not a call: "
                                      "replace/queue does not move callbacks")
# Whether PATCH /api/v2/conversations/callbacks with a queueId replaces the acd participant (True: the
# old one ends, a new one waits in the new queue) or changes it in place (False) is unverified.
CALLBACK_PATCH_REPLACES_PARTICIPANT = False
CHANNELS_PER_CLIENT = 20       # a 21st notification channel removes the oldest
SOCKET_CLOSE, SOCKET_CLOSE_LATER, SOCKET_DROP = "close", "close later", "drop"  # what an outbox may hold besides messages
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455's, for Sec-WebSocket-Accept
SOCKET_GRACE = 1.0             # seconds a socket stays open after socket_closing (Genesys: about a minute)
ANONYMOUS_ADDRESS = "sip:anonymous@anonymous.invalid"  # a withheld number, on the live customer leg
E164 = re.compile(r"\+[1-9][0-9]{1,14}")
ID = r"([^/]+)"


SETTING_PREFIXES = ("GENESYS_", "TARGET_", "SOURCE_")  # the script's own variables


def script_environment(org: FakeOrg | None = None, base_url: str = "", **extra: str) -> dict[str, str]:
    """This process's environment without the script's settings, plus the org's credentials and URL."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(SETTING_PREFIXES)}
    if org is not None:
        env.update(GENESYS_CLIENT_ID=org.client_id, GENESYS_CLIENT_SECRET=org.client_secret, GENESYS_API_HOST=base_url)
    return {**env, **extra}


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def as_iso(moment: str | None) -> str:
    """Now, or an ISO timestamp in Genesys' form (UTC, milliseconds, Z), so times sort as strings."""
    if moment is None:
        return now_iso()
    parsed = dt.datetime.fromisoformat(moment)  # a test's typo fails here, not later
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


IDS = random.Random()  # the demo seeds it, so that its ids (and the README's transcripts) are the same every run


def new_id() -> str:
    return str(uuid.UUID(int=IDS.getrandbits(128), version=4))


def ref(entity: dict[str, Any]) -> dict[str, Any]:
    """An AddressableEntityRef to a queue, skill or language: {id, selfUri}."""
    return {"id": entity["id"], "selfUri": entity["selfUri"]}


@dataclasses.dataclass
class Reply:
    """What the org answers: a response, or a fault the transport must act out (drop, hang)."""

    status: int
    body: Any = None                      # dict/list → JSON; str → sent as is; None → empty
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    action: str | None = None             # None | "drop" (close the connection) | "timeout"
    delay: float = 0.0

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


@dataclasses.dataclass
class Rule:
    """A fault or scripted event for requests whose method and path match, `times` times (None = always)."""

    method: str
    pattern: re.Pattern[str]
    times: int | None
    reply: Reply | None = None
    process: bool = False                 # handle the request for real first, then answer with the fault
    action: Callable[[FakeOrg], None] | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.times is None or self.times > 0) and self.method == method and bool(self.pattern.search(path))


@dataclasses.dataclass
class RequestHold:
    """Matching requests held on their way in, `times` of them (None = all), until release() or `timeout` s.

    A held request has not reached the org yet: it is neither recorded nor handled while held, and
    the org's lock is not taken, so every other request goes on meanwhile. `arrived` is set when
    the first one comes; `held` counts them.
    """

    method: str
    pattern: re.Pattern[str]
    times: int | None
    timeout: float
    arrived: threading.Event = dataclasses.field(default_factory=threading.Event)
    released: threading.Event = dataclasses.field(default_factory=threading.Event)
    held: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.times is None or self.times > 0) and self.method == method and bool(self.pattern.search(path))

    def release(self) -> None:
        """Let the held requests (and any later matching one) through."""
        self.released.set()


class FakeOrg:
    """A small stateful Genesys Cloud org: queues, users, conversations, tokens, limits and faults."""

    def __init__(self, *, client_id: str = "3c9a1ee0-1b7e-4c1f-9a55-0d6f3f1b2a10",
                 client_secret: str = "fake-secret-DO-NOT-LEAK-7f3a9c",
                 permissions: frozenset[str] = ALL_PERMISSIONS, token_ttl: float = 86400,
                 rate_limit: int = 300, rate_window: float = 60.0, transfer_delay: float = 0.0,
                 latency: float = 0.0, remove_skills_from_blind_transfer: bool = False,
                 show_recent_transfers: bool = True) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.permissions = set(permissions)
        self.token_ttl = token_ttl
        self.rate_limit, self.rate_window = rate_limit, rate_window
        self.transfer_delay = transfer_delay
        self.routing_modelled = ROUTING_BODY_MODELLED  # the body keys of the routing PATCH it models
        self.latency = latency
        # the org setting removeSkillsFromBlindTransfer: a blind transfer drops the call's skills
        self.remove_skills_from_blind_transfer = remove_skills_from_blind_transfer
        # False: queue transfers do not show in a conversation's recentTransfers (whether the real API
        # lists them there is unverified)
        self.show_recent_transfers = show_recent_transfers
        self.lock = threading.RLock()
        self.queues: dict[str, dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.skills: dict[str, dict[str, Any]] = {}       # id → RoutingSkill
        self.languages: dict[str, dict[str, Any]] = {}    # id → Language
        self.conversations: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, float] = {}            # token → expiry (monotonic)
        self.issued_tokens: list[str] = []
        self.requests: list[dict[str, Any]] = []      # method, path, query, body of every request
        # every transfer the org accepted: conversationId, participantId, queueId; a callback's also
        # media: "callback" (a call's has no media key), and scheduled: True when moved by PATCH
        self.transfers: list[dict[str, Any]] = []
        self.callback_changes: list[dict[str, Any]] = []   # conversationId, body of every accepted callback PATCH
        self.routing_changes: list[dict[str, Any]] = []    # conversationId, body of every accepted routing PATCH
        self.attribute_changes: list[dict[str, Any]] = []  # conversationId, participantId, attributes
        self.rate_limited = 0                         # 429s answered
        self.hidden_from_analytics: set[str] = set()  # analytics has not seen these yet
        self.stale_in_analytics: set[str] = set()     # analytics still shows these as open
        # (when, transfer, its recentTransfers entry or None): accepted transfers not yet applied
        self._pending: list[tuple[float, dict[str, Any], dict[str, Any] | None]] = []
        self._timed: list[tuple[float, Callable[[FakeOrg], None]]] = []  # org.at: (when, action)
        self._rules: list[Rule] = []
        self._holds: list[RequestHold] = []
        self._calls_by_token: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        # --- the Notifications API (channels, subscriptions, WebSocket events; see serve) ---
        self.channels: dict[str, dict[str, Any]] = {}  # id → topics, expires (monotonic), its socket's outbox
        self.stream_url = "wss://streaming.fake.invalid"  # serve() puts its own ws://127.0.0.1:port here
        self.heartbeat_period = 30.0       # seconds between "WebSocket Heartbeat" messages on each socket
        self.channel_ttl = 86400.0         # a channel expires this long after it was created or last subscribed
        self.lose_events = False           # True: queue events are not sent (the socket stays up, heartbeats go on)
        self.silent_sockets = False        # True: sockets send nothing at all, heartbeats included
        self.block_websockets = False      # True: the WebSocket upgrade is refused (403), as by a proxy
        self.websocket_refusals: list[int] = []  # the next upgrades are answered with these statuses, one each
        self.missing_topic_permissions: list[str] | None = None  # set: queue topics are Rejected, missing these
        self.arrived_at: dict[str, float] = {}   # conversation id → when (monotonic) it started waiting in a queue
        self.accepted_at: dict[str, float] = {}  # conversation id → when (monotonic) its last transfer was accepted
        self.events_sent = 0
        self.on_change: Callable[[str], None] | None = None  # told of each change accepted, in words (the demo)
        self.sockets_opened = 0

    # --- building the org --------------------------------------------------------------

    def add_queue(self, name: str, queue_id: str | None = None) -> str:
        queue_id = queue_id or new_id()
        self.queues[queue_id] = {"id": queue_id, "name": name, "memberCount": 3,
                                 "division": {"id": new_id(), "name": "Home"},
                                 "selfUri": f"/api/v2/routing/queues/{queue_id}"}
        return queue_id

    def add_user(self, name: str, email: str) -> str:
        user_id = new_id()
        self.users[user_id] = {"id": user_id, "name": name, "email": email, "state": "active",
                               "username": email, "selfUri": f"/api/v2/users/{user_id}"}
        return user_id

    def add_skill(self, name: str, state: str = "active") -> str:
        skill_id = new_id()
        self.skills[skill_id] = self._entity(skill_id, name, state, "/api/v2/routing/skills/")
        return skill_id

    def add_language(self, name: str, state: str = "active") -> str:
        language_id = new_id()
        self.languages[language_id] = self._entity(language_id, name, state, "/api/v2/routing/languages/")
        return language_id

    @staticmethod
    def _entity(entity_id: str, name: str, state: str, path: str) -> dict[str, Any]:
        """A RoutingSkill or Language."""
        return {"id": entity_id, "name": name, "state": state, "version": "1", "dateModified": now_iso(),
                "selfUri": path + entity_id}

    def add_waiting_call(self, queue_id: str, *, caller: str | None = "+15550100", priority: int = 0,
                         skill_ids: tuple[str, ...] | list[str] = (), language_id: str | None = None,
                         started: str | None = None) -> str:
        """A voice call from caller (E.164; None: withheld), waiting in queue_id with these routing needs."""
        started = as_iso(started)
        routing = self._routing_data(queue_id, priority, skill_ids, language_id)
        return self._add_call(caller, started, self._participant("acd", queue_id=queue_id, routing=routing,
                                                                 started=started))

    def add_ivr_call(self, *, caller: str | None = "+15550100") -> str:
        """A voice call from caller still in the IVR: not waiting in any queue yet."""
        return self._add_call(caller, None, self._participant("ivr", name="Main IVR"))

    def add_waiting_callback(self, queue_id: str, *, scheduled: bool = False, caller: str = "+15550199",
                             started: str | None = None, priority: int = 0,
                             skill_ids: tuple[str, ...] | list[str] = (), language_id: str | None = None) -> str:
        """A callback to caller (E.164) waiting in queue_id with these routing needs.

        Routed (scheduled=False): offered to agents as they free up, its acd leg's callbacks[0].state
        CALLBACK_ROUTED_STATE. Scheduled: not offered before its callbackScheduledTime,
        CALLBACK_SCHEDULED_AHEAD from now, its state CALLBACK_SCHEDULED_STATE. The customer leg is
        "connected" either way, with the number on callbackNumbers (and no ani).
        """
        if not E164.fullmatch(caller or ""):
            raise ValueError(f"caller {caller!r} is not an E.164 number such as +13175551234")
        started = as_iso(started)
        due = as_iso((dt.datetime.now(dt.timezone.utc) + CALLBACK_SCHEDULED_AHEAD).isoformat()) if scheduled else None
        routing = self._routing_data(queue_id, priority, skill_ids, language_id)
        customer = self._participant("customer", name="Caller", address=f"tel:{caller}", started=started,
                                     callback_numbers=[caller])
        acd = self._participant("acd", queue_id=queue_id, routing=routing, started=started, callback_numbers=[caller],
                                scheduled_time=due)
        return self._add_conversation(started, [customer, acd])

    def _add_call(self, caller: str | None, started: str | None, leg: dict[str, Any]) -> str:
        if caller is not None and not E164.fullmatch(caller):
            raise ValueError(f"caller {caller!r} is not an E.164 number such as +13175551234")
        address = f"tel:{caller}" if caller else ANONYMOUS_ADDRESS
        conversation_id = new_id()  # before the customer's ids: the demo's ids (and the README's) stay as they were
        customer = self._participant("customer", name="Caller", address=address, started=started)
        customer["ani"] = f"tel:{caller}" if caller else "anonymous"
        return self._add_conversation(started, [customer, leg], conversation_id)

    def _add_conversation(self, started: str | None, participants: list[dict[str, Any]],
                          conversation_id: str | None = None) -> str:
        conversation_id = conversation_id or new_id()
        with self.lock:
            self.conversations[conversation_id] = {
                "id": conversation_id, "startTime": as_iso(started), "participants": participants,
                "recordingState": "none", "selfUri": f"/api/v2/conversations/{conversation_id}"}
            if any(p["purpose"] == "acd" for p in participants):
                self.arrived_at[conversation_id] = time.monotonic()
            self.notify(conversation_id)
        return conversation_id

    def add_agent_call(self, user_id: str, queue_id: str) -> str:
        """A voice call that came through queue_id and is now connected to the agent user_id."""
        conversation_id = self.add_waiting_call(queue_id)
        self.answer(conversation_id, user_id)
        return conversation_id

    def answer(self, conversation_id: str, user_id: str) -> None:
        """The call (or routed callback) waiting in a queue is answered: the acd leg ends, an agent leg starts.

        A callback's agent leg carries callbacks[], not calls[]; a scheduled callback cannot be answered yet.
        """
        with self.lock:
            conversation = self.conversations[conversation_id]
            acd = next(p for p in conversation["participants"] if p["purpose"] == "acd" and self._live(p))
            if self._media(acd)[0]["state"] == CALLBACK_SCHEDULED_STATE:
                raise ValueError(f"callback {conversation_id} is scheduled: it is not offered to agents yet")
            self._end(acd)
            conversation["participants"].append(self._participant(
                "agent", queue_id=acd["queueId"], user_id=user_id, callback_numbers=self._numbers(acd)))
            self.notify(conversation_id)

    def hold(self, conversation_id: str) -> None:
        for participant in self.conversations[conversation_id]["participants"]:
            if participant["purpose"] == "agent" and "endTime" not in participant:
                self._media(participant)[0]["held"] = True

    def add_agent_leg(self, conversation_id: str, user_id: str, *, held: bool = False,
                      started: str | None = None) -> str:
        """Another connected agent on a live call, as during a consult; returns its participant id."""
        with self.lock:
            conversation = self.conversations[conversation_id]
            if "endTime" in conversation:
                raise ValueError(f"conversation {conversation_id} has ended")
            numbers = next((self._numbers(p) for p in conversation["participants"] if "callbacks" in p), None)
            leg = self._participant("agent", user_id=user_id, name=self.users[user_id]["name"], started=started,
                                    callback_numbers=numbers)
            self._media(leg)[0]["held"] = held
            conversation["participants"].append(leg)
            return leg["id"]

    def end_call(self, conversation_id: str) -> None:
        """The customer hangs up: every leg disconnects and the conversation ends."""
        with self.lock:
            conversation = self.conversations[conversation_id]
            for participant in conversation["participants"]:
                if "endTime" not in participant:
                    self._end(participant)
            conversation["endTime"] = now_iso()
            self.notify(conversation_id)

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens = {token: 0.0 for token in self.tokens}

    def _participant(self, purpose: str, *, queue_id: str | None = None, user_id: str | None = None,
                     name: str | None = None, address: str | None = None, routing: dict[str, Any] | None = None,
                     started: str | None = None, callback_numbers: list[str] | None = None,
                     scheduled_time: str | None = None) -> dict[str, Any]:
        """A participant on a call (calls[]), or with callback_numbers on a callback (callbacks[]).

        A callback's acd leg is CALLBACK_ROUTED_STATE, or with scheduled_time CALLBACK_SCHEDULED_STATE
        and not connected; its other legs are connected.
        """
        started = as_iso(started)
        participant: dict[str, Any] = {
            "id": new_id(), "startTime": started, "connectedTime": started, "purpose": purpose,
            "name": name or (self.queues[queue_id]["name"] if queue_id and purpose == "acd" else purpose),
            "wrapupRequired": purpose == "agent", "attributes": {}}
        if callback_numbers is None:
            participant["calls"] = [{"id": new_id(), "state": "connected", "initialState": "offering", "held": False,
                                     "muted": False, "confined": False, "recording": False, "direction": "inbound",
                                     "connectedTime": started, "self": {"addressNormalized": address or ""}}]
        else:
            state = "connected" if purpose != "acd" else \
                CALLBACK_SCHEDULED_STATE if scheduled_time else CALLBACK_ROUTED_STATE
            callback = {"id": new_id(), "state": state, "initialState": state, "direction": "inbound",
                        "held": False, "callbackNumbers": list(callback_numbers), "connectedTime": started}
            if scheduled_time:
                callback["callbackScheduledTime"] = scheduled_time
            if state == CALLBACK_SCHEDULED_STATE:
                del callback["connectedTime"], participant["connectedTime"]
            participant["callbacks"] = [callback]
        if address:
            participant["address"] = address
        if queue_id:
            participant["queueId"] = queue_id
            participant["queueName"] = self.queues[queue_id]["name"]
        if purpose == "acd" and queue_id:
            participant["conversationRoutingData"] = routing or self._routing_data(queue_id, 0, (), None)
        if user_id:
            participant["userId"] = user_id
            participant["userUri"] = f"/api/v2/users/{user_id}"
        return participant

    def _routing_data(self, queue_id: str, priority: int, skill_ids: tuple[str, ...] | list[str],
                      language_id: str | None) -> dict[str, Any]:
        """ConversationRoutingData: skills and language as {id, selfUri} refs (the model has no names there)."""
        routing: dict[str, Any] = {"queue": ref(self.queues[queue_id]), "priority": priority,
                                   "skills": [ref(self.skills[skill_id]) for skill_id in dict.fromkeys(skill_ids)]}
        if language_id:
            routing["language"] = ref(self.languages[language_id])
        return routing

    @staticmethod
    def _media(participant: dict[str, Any]) -> list[dict[str, Any]]:
        """The participant's communications: its callbacks[] on a callback, else its calls[]."""
        return participant["callbacks"] if "callbacks" in participant else participant["calls"]

    @classmethod
    def _numbers(cls, participant: dict[str, Any]) -> list[str] | None:
        """A callback leg's callbackNumbers, None on a call's leg."""
        return cls._media(participant)[0].get("callbackNumbers", []) if "callbacks" in participant else None

    @staticmethod
    def _live(participant: dict[str, Any]) -> bool:
        """Not ended; a callback's leg also not while its callbacks[] state is disconnected or terminated."""
        return "endTime" not in participant and not (
            "callbacks" in participant and all(c["state"] in ENDED_STATES for c in participant["callbacks"]))

    @classmethod
    def _end(cls, participant: dict[str, Any]) -> None:
        ended = now_iso()
        participant["endTime"] = ended
        for call in cls._media(participant):
            call.update(state="disconnected", disconnectedTime=ended, disconnectType="transfer")

    # --- faults and scripted events ----------------------------------------------------

    def inject(self, method: str, path: str, status: int = 503, *, times: int | None = 1,
               retry_after: float | None = None, process: bool = False, action: str | None = None,
               delay: float = 0.0, body: Any = "default", headers: dict[str, str] | None = None) -> None:
        """Answer matching requests with a fault: a status, a dropped connection (action="drop") or a hang ("timeout").

        process=True handles the request for real first: the effect stands, the answer is lost. Headers
        such as {"Content-Encoding": "gzip"} with a body not in that encoding make httpx raise
        httpx.DecodingError in the client, in-process and over HTTP.
        """
        if body == "default":
            body = self._error_body(status, "service.unavailable" if status >= 500 else "bad.request",
                                    "The service is currently unavailable")[0]
        reply = Reply(status, body, dict(headers or {}), action, delay)
        if retry_after is not None:
            reply.headers["Retry-After"] = f"{retry_after:g}"
        self._rules.append(Rule(method, re.compile(path), times, reply=reply, process=process))

    def when(self, method: str, path: str, action: Callable[[FakeOrg], None], *, times: int | None = 1) -> None:
        """Run action(org) just before matching requests are handled (a call ends, an agent answers)."""
        self._rules.append(Rule(method, re.compile(path), times, action=action))

    def at(self, seconds: float, action: Callable[[FakeOrg], None]) -> None:
        """Run action(org) once, `seconds` (monotonic) from now: an agent answers 1 s after a lost answer.

        Like a delayed transfer it happens at the first request (or look-up such as queue_of) after
        that moment, and in time order with the transfers due by then: an event due before a
        transfer's moment happens first, whenever the next request comes.
        """
        with self.lock:
            self._timed.append((time.monotonic() + seconds, action))

    def hold_requests(self, method: str, path: str, *, times: int | None = 1, timeout: float = 10.0,
                      until: threading.Event | None = None) -> RequestHold:
        """RequestHold matching requests before they reach the org, until hold.release() (or `timeout` s, a safety net).

        As a slow network would: the request is handled only once let through, while every other
        request is answered as usual (a worker stays in the middle of its call; a run stays busy).
        Unlike `when`, which runs under the org's lock, a hold stops nothing else. `until`: let
        them through once that event is set too, such as another hold's `arrived` (this request
        waits until that one has come).
        """
        hold = RequestHold(method, re.compile(path), times, timeout)
        if until is not None:
            threading.Thread(target=lambda: until.wait(timeout) and hold.release(), daemon=True).start()
        with self.lock:
            self._holds.append(hold)
        return hold

    def _wait_if_held(self, method: str, path: str) -> None:
        with self.lock:
            hold = next((h for h in self._holds if h.matches(method, path)), None)
            if hold is None:
                return
            if hold.times is not None:
                hold.times -= 1
            hold.held += 1
        hold.arrived.set()
        hold.released.wait(hold.timeout)

    def clear_faults(self) -> None:
        """Drop every fault, scripted event, timed event and hold not yet used up: the org behaves normally again."""
        with self.lock:
            self._rules.clear()
            self._timed.clear()
            for hold in self._holds:
                hold.release()
            self._holds.clear()

    # --- what tests look at ------------------------------------------------------------

    def _changed(self, words: str) -> None:
        if self.on_change is not None:
            self.on_change(words)

    def state(self) -> str:
        """Where each live call is now, a line each (the demo shows it): waiting in a queue, or with an agent."""
        with self.lock:
            self._apply_due_transfers()
            lines = []
            for conversation in self.conversations.values():
                if "endTime" in conversation:
                    continue
                live = [p for p in conversation["participants"] if self._live(p) and p["purpose"] in ("acd", "agent")]
                where = ", ".join(f"with {self.users[p['userId']]['name']}" if p["purpose"] == "agent" else
                                  f"waiting in {p['queueName']} (priority {p['conversationRoutingData']['priority']})"
                                  for p in live) or "in no queue"
                kind = "callback" if any("callbacks" in p for p in conversation["participants"]) else "call"
                lines.append(f"{kind} {conversation['id']}: {where}")
            return "\n".join(lines)

    def sent(self, method: str, path_part: str = "") -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == method and path_part in r["path"]]

    def recent_transfers(self, conversation_id: str) -> list[dict[str, Any]]:
        """The conversation's recentTransfers now (copies), oldest first, as GET /api/v2/conversations/{id} shows them."""
        with self.lock:
            self._apply_due_transfers()
            return copy.deepcopy(self.conversations[conversation_id].get("recentTransfers", []))

    def live_participants(self, conversation_id: str, purpose: str) -> list[dict[str, Any]]:
        self._apply_due_transfers()
        return [p for p in self.conversations[conversation_id]["participants"]
                if p["purpose"] == purpose and self._live(p)]

    def queue_of(self, conversation_id: str) -> str | None:
        """The queue a call or callback (routed or scheduled) is waiting in now, or None."""
        waiting = self.live_participants(conversation_id, "acd")
        return waiting[0]["queueId"] if len(waiting) == 1 else None

    def routing_of(self, conversation_id: str) -> dict[str, Any] | None:
        """The waiting call's conversationRoutingData now (a copy), or None when it waits in no queue."""
        waiting = self.live_participants(conversation_id, "acd")
        return copy.deepcopy(waiting[-1]["conversationRoutingData"]) if waiting else None

    def attributes_of(self, conversation_id: str, purpose: str = "customer") -> dict[str, str]:
        """The participant data (a copy) of the call's live participant with that purpose, else its last one."""
        self._apply_due_transfers()
        legs = [p for p in self.conversations[conversation_id]["participants"] if p["purpose"] == purpose]
        if not legs:
            raise ValueError(f"conversation {conversation_id} has no {purpose} participant")
        live = [p for p in legs if "endTime" not in p]
        return dict((live or legs)[-1]["attributes"])

    # --- answering requests ------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        """The httpx.MockTransport entry point."""
        reply = self.respond(request.method, request.url.raw_path.decode(), dict(request.headers), request.content)
        if reply.action == "drop":
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        if reply.action == "timeout":
            raise httpx.ReadTimeout("timed out", request=request)
        if any(name.lower() == "content-encoding" for name in reply.headers):
            # a stream the client decodes as it reads the body, as over HTTP: a body that is not in
            # that encoding raises httpx.DecodingError in the client, after the request was handled
            data = reply.encoded()
            headers = {"Content-Length": str(len(data)), **reply.headers}
            return httpx.Response(reply.status, headers=headers, stream=httpx.ByteStream(data), request=request)
        return httpx.Response(reply.status, headers=reply.headers, content=reply.encoded(), request=request)

    def respond(self, method: str, raw_path: str, headers: dict[str, str], content: bytes) -> Reply:
        parts = urllib.parse.urlsplit(raw_path)
        path, query = parts.path, dict(urllib.parse.parse_qsl(parts.query))
        self._wait_if_held(method, path)  # org.hold_requests: not yet arrived, outside the lock
        with self.lock:
            body = self._parse_body(headers, content)
            self.requests.append({"method": method, "path": path, "query": query, "body": body, "at": time.monotonic(),
                                  "authorization": headers.get("authorization", "")})
            self._apply_due_transfers()
            fault = None
            for rule in self._rules:
                if rule.matches(method, path):
                    if rule.times is not None:
                        rule.times -= 1
                    if rule.action:
                        rule.action(self)
                    elif fault is None:
                        fault = rule
            if fault is not None and not fault.process:
                return fault.reply
            reply = self._route(method, path, query, headers, body)
            return fault.reply if fault is not None else reply

    @staticmethod
    def _parse_body(headers: dict[str, str], content: bytes) -> Any:
        if not content:
            return None
        text = content.decode()
        if "x-www-form-urlencoded" in headers.get("content-type", ""):
            return dict(urllib.parse.parse_qsl(text))
        try:
            return json.loads(text)
        except ValueError:
            return text

    def _route(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: Any) -> Reply:
        if method == "POST" and path == "/oauth/token":
            return self._token(headers, body)
        if path in ("/api/v2/conversations", "/api/v2/conversations/calls", "/api/v2/users/me"):
            denied = self._authorize(headers, None)
            return denied or self._error(400, "bad.request", "This request requires a user context. "
                                         "Client credentials cannot be used for requests to this resource.")
        for route_method, pattern, permission, handler in self._routes():
            match = re.fullmatch(pattern, path)
            if match and route_method == method:
                denied = self._authorize(headers, permission)
                if denied:
                    return denied
                token = headers["authorization"].split()[1]
                limited = self._rate_limit(token)
                reply = limited or handler(*match.groups(), query=query, body=body)
                reply.headers.update(self._rate_headers(token))
                return reply
        return self._error(404, "not.found", f"Unknown resource {method} {path}")

    def _routes(self) -> list[tuple[str, str, Any, Callable[..., Reply]]]:
        return [
            ("GET", rf"/api/v2/conversations/{ID}", "conversation:communication:view", self._get_conversation),
            ("POST", rf"/api/v2/conversations/{ID}/participants/{ID}/replace/queue", TRANSFER_PERMISSIONS,
             self._transfer),
            ("GET", r"/api/v2/analytics/conversations/details", "analytics:conversationDetail:view",
             self._details_by_id),
            ("POST", r"/api/v2/analytics/conversations/details/query", "analytics:conversationDetail:view",
             self._details_query),
            ("GET", rf"/api/v2/routing/queues/{ID}", "routing:queue:view", self._get_queue),
            ("GET", r"/api/v2/routing/queues", "routing:queue:view", self._list_queues),
            ("POST", r"/api/v2/users/search", "directory:user:view", self._search_users),
            ("GET", rf"/api/v2/users/{ID}", "directory:user:view",
             lambda user_id, **_: self._get_entity(self.users, "User", user_id)),
            ("GET", rf"/api/v2/routing/skills/{ID}", "routing:skill:view",
             lambda skill_id, **_: self._get_entity(self.skills, "Skill", skill_id)),
            ("GET", r"/api/v2/routing/skills", "routing:skill:view",
             lambda *, query, **_: self._list_entities(self.skills, query)),
            ("GET", rf"/api/v2/routing/languages/{ID}", None,  # languages need no permission, only a token
             lambda language_id, **_: self._get_entity(self.languages, "Language", language_id)),
            ("GET", r"/api/v2/routing/languages", None,
             lambda *, query, **_: self._list_entities(self.languages, query)),
            ("PATCH", rf"/api/v2/routing/conversations/{ID}", "routing:conversation:edit", self._patch_routing),
            ("PATCH", rf"/api/v2/conversations/calls/{ID}/participants/{ID}/attributes", None, self._patch_attributes),
            ("POST", rf"/api/v2/conversations/callbacks/{ID}/participants/{ID}/replace", TRANSFER_PERMISSIONS,
             self._transfer_callback),
            ("PATCH", r"/api/v2/conversations/callbacks", "conversation:callback:edit", self._patch_callback),
            ("PATCH", rf"/api/v2/conversations/callbacks/{ID}/participants/{ID}/attributes", None,
             self._patch_attributes),
            ("POST", r"/api/v2/notifications/channels", None, self._create_channel),
            ("PUT", rf"/api/v2/notifications/channels/{ID}/subscriptions", None, self._subscribe),
            ("POST", rf"/api/v2/notifications/channels/{ID}/subscriptions", None,
             lambda channel_id, *, body, **_: self._subscribe(channel_id, body=body, add=True)),
            ("HEAD", rf"/api/v2/notifications/channels/{ID}", None, self._channel_exists),
        ]

    # --- auth and limits -----------------------------------------------------------------

    def _token(self, headers: dict[str, str], body: Any) -> Reply:
        try:
            scheme, encoded = headers.get("authorization", "").split()
            client_id, secret = base64.b64decode(encoded).decode().split(":", 1)
        except ValueError:
            return Reply(400, {"error": "invalid_request", "description": "missing client credentials"})
        if not isinstance(body, dict) or body.get("grant_type") != "client_credentials" or scheme != "Basic":
            return Reply(400, {"error": "unsupported_grant_type", "description": "grant type not supported"})
        if client_id != self.client_id:
            return Reply(400, {"error": "invalid_client", "description": "client not found",
                               "error_description": "client not found"})
        if secret != self.client_secret:
            return Reply(401, {"error": "invalid_client", "description": "authentication failed",
                               "error_description": "authentication failed"})
        token = secrets.token_urlsafe(32)
        self.tokens[token] = time.monotonic() + self.token_ttl
        self.issued_tokens.append(token)
        return Reply(200, {"access_token": token, "token_type": "bearer", "expires_in": int(self.token_ttl)},
                     {"Content-Type": "application/json"})

    def _authorize(self, headers: dict[str, str], permission: str | tuple[str, ...] | None) -> Reply | None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or token not in self.tokens:
            return self._error(401, "authentication.required", "No authentication bearer token specified "
                               "in authorization header." if not token else "Invalid login credentials.")
        if self.tokens[token] <= time.monotonic():
            return self._error(401, "bad.credentials", "Invalid login credentials.")
        needed = (permission,) if isinstance(permission, str) else permission or ()
        if needed and not self.permissions.intersection(needed):
            listed = ", ".join(needed)
            return self._error(403, "missing.any.permissions",
                               f"Unable to perform the requested action. You are missing the following "
                               f"permission(s): [{listed}]", {"permissions": listed})
        return None

    def _seconds(self, seconds: float) -> str:
        """A wait as Genesys states it: whole seconds, rounded up, over its 60 s window.

        A time-scaled org (rate_window below 60 s, for benchmarks) scales that granularity too.
        """
        step = self.rate_window / 60
        return f"{max(step, math.ceil(seconds / step - 1e-9) * step):g}"

    def _rate_limit(self, token: str) -> Reply | None:
        calls = self._calls_by_token[token]
        moment = time.monotonic()
        while calls and calls[0] <= moment - self.rate_window:
            calls.popleft()
        if len(calls) >= self.rate_limit:
            self.rate_limited += 1
            wait = self._seconds(calls[0] + self.rate_window - moment)
            reply = self._error(429, "too.many.requests.retry.after",
                                f"Rate limit exceeded the maximum. Retry the request in [{wait}] seconds",
                                {"retryAfter": wait})
            reply.headers["Retry-After"] = wait
            return reply
        calls.append(moment)
        return None

    def _rate_headers(self, token: str) -> dict[str, str]:
        calls = self._calls_by_token[token]
        reset = calls[0] + self.rate_window - time.monotonic() if calls else self.rate_window
        return {"inin-ratelimit-count": str(len(calls)), "inin-ratelimit-allowed": str(self.rate_limit),
                "inin-ratelimit-reset": self._seconds(reset)}

    def _error_body(self, status: int, code: str, message: str,
                    params: dict[str, str] | None = None) -> tuple[dict[str, Any], str]:
        correlation = new_id()
        return ({"status": status, "code": code, "message": message, "messageWithParams": message,
                 "messageParams": params or {}, "contextId": correlation, "details": [], "errors": []},
                correlation)

    def _error(self, status: int, code: str, message: str, params: dict[str, str] | None = None) -> Reply:
        body, correlation = self._error_body(status, code, message, params)
        return Reply(status, body, {"Content-Type": "application/json", "ININ-Correlation-Id": correlation})

    @staticmethod
    def _json(body: Any, status: int = 200) -> Reply:
        return Reply(status, body, {"Content-Type": "application/json"})

    # --- the API ---------------------------------------------------------------------------

    def _get_conversation(self, conversation_id: str, **_: Any) -> Reply:
        conversation = self.conversations.get(conversation_id)
        if conversation is None:
            return self._error(404, "not.found", f"Conversation {conversation_id} not found")
        return self._json(conversation)

    def _leg(self, conversation_id: str, participant_id: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """(conversation, participant) by their ids; the participant is None when either is unknown."""
        conversation = self.conversations.get(conversation_id)
        return conversation, next((p for p in (conversation or {}).get("participants", [])
                                   if p["id"] == participant_id), None)

    def _transfer(self, conversation_id: str, participant_id: str, *, body: Any, **_: Any) -> Reply:
        if not isinstance(body, dict) or set(body) - TRANSFER_BODY_KEYS or not (body.get("queueId") or body.get("queueName")):
            return self._error(400, "bad.request", f"Invalid TransferToQueueRequest: {body!r}")
        conversation, participant = self._leg(conversation_id, participant_id)
        if participant is None:
            return self._error(404, "not.found", "The conversation or participant was not found")
        if participant["purpose"] in ("customer", "external"):
            return self._error(400, "bad.request", "The customer participant cannot be replaced")
        if "calls" not in participant:
            return self._error(400, *CALLBACK_NOT_A_CALL)
        if "endTime" in participant or participant["calls"][0]["state"] != "connected":
            return self._error(400, "conversations.error.transfer.not.connected",
                               "The participant is not connected and cannot be transferred")
        queue_id = body.get("queueId") or next(
            (q["id"] for q in self.queues.values() if q["name"] == body.get("queueName")), None)
        if queue_id not in self.queues:
            return self._error(400, "conversations.error.queue.not.found", f"Queue {queue_id} was not found")
        if participant["purpose"] == "acd" and participant.get("queueId") == queue_id:
            return self._error(400, "conversations.error.transfer.same.party",
                               "The participant is already in the target queue")
        return self._accept_transfer(conversation, participant_id, queue_id, "voice")

    def _transfer_callback(self, conversation_id: str, participant_id: str, *, body: Any, **_: Any) -> Reply:
        """Move a routed callback's acd leg to body["queueId"]: 202, applied asynchronously like a call's transfer.

        Checked in this order: the body's shape (bad.request), the conversation and participant
        (not.found), that the leg is a callback's and not the customer's, not scheduled
        (CALLBACK_NOT_OFFERED) and live, then the queue.
        """
        if not isinstance(body, dict) or set(body) - CALLBACK_TRANSFER_BODY_KEYS:
            return self._error(400, "bad.request", f"Invalid TransferRequest: {body!r}")
        if set(body) - CALLBACK_TRANSFER_MODELLED or not isinstance(body.get("queueId"), str):
            return self._error(400, "bad.request", "The fake org models only a transfer to a queue (queueId): "
                                                   f"{body!r}")
        conversation, participant = self._leg(conversation_id, participant_id)
        if participant is None:
            return self._error(404, "not.found", "The conversation or participant was not found")
        if participant["purpose"] in ("customer", "external"):
            return self._error(400, "bad.request", "The customer participant cannot be replaced")
        if "callbacks" not in participant:
            return self._error(400, "bad.request", "The participant is not on a callback")
        if participant["callbacks"][0]["state"] == CALLBACK_SCHEDULED_STATE:
            return self._error(400, *CALLBACK_NOT_OFFERED)
        if not self._live(participant) or participant["callbacks"][0]["state"] not in ("connected",
                                                                                      CALLBACK_ROUTED_STATE):
            return self._error(400, "conversations.error.transfer.not.connected",
                               "The participant is not connected and cannot be transferred")
        queue_id = body["queueId"]
        if queue_id not in self.queues:
            return self._error(400, "conversations.error.queue.not.found", f"Queue {queue_id} was not found")
        if participant["purpose"] == "acd" and participant.get("queueId") == queue_id:
            return self._error(400, "conversations.error.transfer.same.party",
                               "The participant is already in the target queue")
        return self._accept_transfer(conversation, participant_id, queue_id, "callback")

    def _accept_transfer(self, conversation: dict[str, Any], participant_id: str, queue_id: str, media: str) -> Reply:
        """Record an accepted transfer (org.transfers, recentTransfers) and apply it after transfer_delay: 202."""
        transfer = {"conversationId": conversation["id"], "participantId": participant_id, "queueId": queue_id}
        if media != "voice":  # a call's entry keeps the shape tests/test_single_call.py compares exactly
            transfer["media"] = media
        self.transfers.append(transfer)
        self.accepted_at[conversation["id"]] = time.monotonic()
        self._changed(f"transfer of {conversation['id']} to {self.queues[queue_id]['name']} accepted")
        entry = self._record_transfer(conversation) if self.show_recent_transfers else None
        self._pending.append((time.monotonic() + self.transfer_delay, transfer, entry))
        self._apply_due_transfers()
        return Reply(202)

    def _patch_callback(self, *, body: Any, **_: Any) -> Reply:
        """Move a scheduled callback (not yet offered) to body["queueId"] at once; answer a PatchCallbackResponse.

        Checked in this order: the body's shape (bad.request), the conversation (not.found), that it
        has a live scheduled acd leg (CALLBACK_NOT_SCHEDULED), then the queue. Without a queueId
        nothing changes. Whether the acd participant is replaced is CALLBACK_PATCH_REPLACES_PARTICIPANT.
        """
        if not isinstance(body, dict) or set(body) - CALLBACK_PATCH_BODY_KEYS \
                or not isinstance(body.get("conversationId"), str) or not isinstance(body.get("queueId", ""), str):
            return self._error(400, "bad.request", f"Invalid PatchCallbackRequest: {body!r}")
        if set(body) - CALLBACK_PATCH_MODELLED:
            unmodelled = ", ".join(sorted(set(body) - CALLBACK_PATCH_MODELLED))
            return self._error(400, "bad.request", f"The fake org does not model {unmodelled}")
        conversation_id, queue_id = body["conversationId"], body.get("queueId")
        conversation = self.conversations.get(conversation_id)
        if conversation is None:
            return self._error(404, "not.found", f"Conversation {conversation_id} not found")
        acd = next((p for p in conversation["participants"]
                    if p["purpose"] == "acd" and "callbacks" in p and self._live(p)), None)
        if acd is None or acd["callbacks"][0]["state"] != CALLBACK_SCHEDULED_STATE:
            return self._error(400, *CALLBACK_NOT_SCHEDULED)
        if queue_id is not None and queue_id not in self.queues:
            return self._error(400, "conversations.error.queue.not.found", f"Queue {queue_id} was not found")
        if queue_id is not None:
            moved = self._move_scheduled(conversation, acd, queue_id)
            self.accepted_at[conversation_id] = time.monotonic()
            self.notify(conversation_id)
            self._changed(f"scheduled callback {conversation_id} moved to {self.queues[queue_id]['name']}")
            self.transfers.append({"conversationId": conversation_id, "participantId": acd["id"], "queueId": queue_id,
                                   "media": "callback", "scheduled": True})
            acd = moved
        self.callback_changes.append({"conversationId": conversation_id, "body": copy.deepcopy(body)})
        return self._json({"conversation": {"id": conversation_id, "selfUri": conversation["selfUri"]},
                           "callbackIdentifiers": [{"type": "ACD", "id": acd["callbacks"][0]["id"]}]})

    def _move_scheduled(self, conversation: dict[str, Any], acd: dict[str, Any], queue_id: str) -> dict[str, Any]:
        """The scheduled callback's acd leg now waits in queue_id, the same one or (unverified) a new one."""
        routing = copy.deepcopy(acd["conversationRoutingData"])
        routing["queue"] = ref(self.queues[queue_id])
        if CALLBACK_PATCH_REPLACES_PARTICIPANT:
            self._end(acd)
            new = self._participant("acd", queue_id=queue_id, routing=routing, callback_numbers=self._numbers(acd),
                                    scheduled_time=acd["callbacks"][0]["callbackScheduledTime"])
            conversation["participants"].append(new)
            return new
        name = self.queues[queue_id]["name"]
        acd.update(queueId=queue_id, queueName=name, name=name, conversationRoutingData=routing)
        return acd

    @staticmethod
    def _record_transfer(conversation: dict[str, Any]) -> dict[str, Any]:
        """A TransferResponse on the conversation's recentTransfers (the last RECENT_TRANSFERS kept), Pending.

        initiator and modifiedBy are empty (an OAuth client is no user); destination, which the model
        gives only userId and address, is empty for a queue transfer.
        """
        entry = {"id": new_id(), "state": "Pending", "dateIssued": now_iso(), "initiator": {}, "modifiedBy": {},
                 "destination": {}, "transferType": "Unattended"}
        recent = conversation.setdefault("recentTransfers", [])
        recent.append(entry)
        del recent[:-RECENT_TRANSFERS]
        return entry

    def _apply_due_transfers(self) -> None:
        """What is due by now, in time order: timed events (org.at), and the asynchronous half of a transfer.

        A transfer's old leg disconnects and an acd leg waits in the new queue (recentTransfers:
        Complete), unless the leg or the call ended first (Failed).
        """
        with self.lock:  # tests look up state while served requests are handled
            moment = time.monotonic()
            due: list[tuple[float, int, Any]] = [(when, 0, (t, entry)) for when, t, entry in self._pending
                                                 if when <= moment]
            due += [(when, 1, action) for when, action in self._timed if when <= moment]
            self._pending = [item for item in self._pending if item[0] > moment]
            self._timed = [item for item in self._timed if item[0] > moment]
            for _, kind, item in sorted(due, key=lambda d: (d[0], d[1])):
                if kind == 1:
                    item(self)
                else:
                    self._apply_transfer(*item)

    def _apply_transfer(self, transfer: dict[str, Any], entry: dict[str, Any] | None) -> None:
        conversation = self.conversations[transfer["conversationId"]]
        old = next(p for p in conversation["participants"] if p["id"] == transfer["participantId"])
        if "endTime" in conversation or not self._live(old):  # the call ended (or was answered) first
            if entry is not None:
                entry["state"] = "Failed"
            return
        if entry is not None:
            entry["state"] = "Complete"
        self._end(old)
        # the call keeps the priority, skills and language it last waited with (skills unless the
        # org setting removes them); its queue is the new one
        last = next((p["conversationRoutingData"] for p in reversed(conversation["participants"])
                     if "conversationRoutingData" in p), {})
        routing = self._routing_data(transfer["queueId"], 0, (), None)
        routing.update((key, copy.deepcopy(value)) for key, value in last.items() if key != "queue")
        if self.remove_skills_from_blind_transfer:
            routing["skills"] = []
        conversation["participants"].append(self._participant("acd", queue_id=transfer["queueId"], routing=routing,
                                                              callback_numbers=self._numbers(old)))
        self.notify(conversation["id"])

    def _details_query(self, *, body: Any, **_: Any) -> Reply:
        if not isinstance(body, dict) or "interval" not in body:
            return self._error(400, "bad.request", "interval is required")
        try:
            matches = [view for view in map(self._analytics_view, self.conversations.values())
                       if view and self._matches_query(view, body)]
        except KeyError as exc:
            return self._error(400, "invalid.value", f"Unsupported dimension {exc}")
        except ValueError as exc:
            return self._error(400, "invalid.value", str(exc))
        matches.sort(key=lambda view: view["conversationStart"], reverse=body.get("order", "asc") == "desc")
        paging = body.get("paging") or {}
        size, number = min(int(paging.get("pageSize", 25)), 100), int(paging.get("pageNumber", 1))
        page = matches[(number - 1) * size: number * size]
        return self._json({"conversations": page, "totalHits": len(matches)} if page else {"totalHits": len(matches)})

    def _details_by_id(self, *, query: dict[str, str], **_: Any) -> Reply:
        """GET /api/v2/analytics/conversations/details?id=a,b: the conversations analytics knows of these ids."""
        ids = [i for i in query.get("id", "").split(",") if i]
        if not ids or len(ids) > 100:
            return self._error(400, "invalid.value", "id must list 1 to 100 conversation ids")
        views = [self._analytics_view(self.conversations[i]) for i in ids if i in self.conversations]
        return self._json({"conversations": [view for view in views if view]})

    def _analytics_view(self, conversation: dict[str, Any]) -> dict[str, Any] | None:
        """The conversation as the details query shows it: participants → sessions → segments."""
        if conversation["id"] in self.hidden_from_analytics:
            return None
        stale = conversation["id"] in self.stale_in_analytics
        view: dict[str, Any] = {"conversationId": conversation["id"], "conversationStart": conversation["startTime"],
                                "originatingDirection": "inbound", "participants": []}
        if "endTime" in conversation and not stale:
            view["conversationEnd"] = conversation["endTime"]
        customer_ani = next((p.get("ani") for p in conversation["participants"] if p["purpose"] == "customer"), None)
        for participant in conversation["participants"]:
            segment = {"segmentType": "interact", "segmentStart": participant["startTime"]}
            if "queueId" in participant:
                segment["queueId"] = participant["queueId"]
            if "endTime" in participant and not stale:
                segment["segmentEnd"] = participant["endTime"]
            media = self._media(participant)[0]
            session = {"mediaType": "callback" if "callbacks" in participant else "voice", "sessionId": media["id"],
                       "direction": "inbound", "segments": [segment]}
            for key in ("callbackNumbers", "callbackScheduledTime"):
                if key in media:
                    session[key] = copy.deepcopy(media[key])
            if customer_ani:
                session["ani"] = self._session_ani(customer_ani, participant["purpose"])
            entry = {"participantId": participant["id"], "purpose": participant["purpose"],
                     "participantName": participant.get("name"), "sessions": [session]}
            if "userId" in participant:
                entry["userId"] = participant["userId"]
            view["participants"].append(entry)
        return view

    @staticmethod
    def _session_ani(customer_ani: str, purpose: str) -> str:
        """The caller's number as analytics stores it on a session: tel:+E164, sip:+E164@host on agent legs."""
        if customer_ani == "anonymous":
            return customer_ani
        number = customer_ani.removeprefix("tel:")
        return f"sip:{number}@fake.example;user=phone" if purpose == "agent" else f"tel:{number}"

    @staticmethod
    def _matches_query(view: dict[str, Any], query: dict[str, Any]) -> bool:
        def holds(predicate: dict[str, Any], values: dict[str, Any]) -> bool:
            value = values[predicate["dimension"]]
            operator = predicate.get("operator", "matches")
            if operator == "notExists":
                return value is None
            if operator == "exists":
                return value is not None
            # matches is plain equality here; which forms of a number (tel:+E164, +E164, digits) the
            # real API's ani matches is unverified
            return value == predicate["value"]

        def group_holds(group: dict[str, Any], values: dict[str, Any]) -> bool:
            """A filter (or one of its clauses): its predicates and clauses, all ("and") or any ("or")."""
            kind = group.get("type", "and")
            if kind not in ("and", "or"):
                raise ValueError(f"Unsupported filter type {kind!r}")
            results = [holds(p, values) for p in group.get("predicates", [])]
            results += [group_holds(clause, values) for clause in group.get("clauses", [])]
            return not results or (all if kind == "and" else any)(results)

        # several filters are ANDed together
        conversation_values = {"conversationEnd": view.get("conversationEnd"), "conversationId": view["conversationId"]}
        for group in query.get("conversationFilters", []):
            if not group_holds(group, conversation_values):
                return False
        segment_groups = query.get("segmentFilters", [])
        for participant in view["participants"]:
            for session in participant["sessions"]:
                for segment in session["segments"]:
                    values = {"userId": participant.get("userId"), "purpose": participant["purpose"],
                              "mediaType": session["mediaType"], "queueId": segment.get("queueId"),
                              "segmentEnd": segment.get("segmentEnd"), "segmentType": segment["segmentType"],
                              "ani": session.get("ani")}
                    if all(group_holds(group, values) for group in segment_groups):
                        return True
        return not segment_groups

    def _get_queue(self, queue_id: str, **_: Any) -> Reply:
        queue = self.queues.get(queue_id)
        return self._json(queue) if queue else self._error(404, "not.found", f"Queue {queue_id} not found")

    def _list_queues(self, *, query: dict[str, str], **_: Any) -> Reply:
        wanted = query.get("name")
        pattern = re.compile("^" + re.escape(wanted or "*").replace(r"\*", ".*") + "$", re.IGNORECASE)
        found = [q for q in self.queues.values() if pattern.match(q["name"])]
        size = int(query.get("pageSize", 25))
        return self._json({"entities": found[:size], "pageSize": size, "pageNumber": 1, "total": len(found),
                           "pageCount": max(1, math.ceil(len(found) / size))})

    def _get_entity(self, entities: dict[str, dict[str, Any]], kind: str, entity_id: str) -> Reply:
        entity = entities.get(entity_id)
        if entity is None:
            return self._error(404, "not.found", f"{kind} {entity_id} not found")
        return self._json(copy.deepcopy(entity))

    def _list_entities(self, entities: dict[str, dict[str, Any]], query: dict[str, str]) -> Reply:
        """A SkillEntityListing or LanguageEntityListing: names that start with `name`, any case, any state."""
        try:
            size, number = int(query.get("pageSize", 25)), int(query.get("pageNumber", 1))
        except ValueError:
            return self._error(400, "bad.request", "pageSize and pageNumber must be integers")
        if size < 1 or number < 1:
            return self._error(400, "bad.request", "pageSize and pageNumber must be positive")
        prefix = query.get("name", "").lower()
        found = [copy.deepcopy(e) for e in entities.values() if e["name"].lower().startswith(prefix)]
        return self._json({"entities": found[(number - 1) * size: number * size], "pageSize": size,
                           "pageNumber": number, "total": len(found), "pageCount": math.ceil(len(found) / size)})

    def _patch_routing(self, conversation_id: str, *, body: Any, **_: Any) -> Reply:
        """Change a waiting call's priority, skills or language; answer the values now in force.

        Checked in this order: the body's shape (bad.request), the conversation (not.found), that it
        waits in a queue (NOT_IN_QUEUE), then the skill and language ids (invalid.value).
        """
        if not isinstance(body, dict) or set(body) - ROUTING_BODY_KEYS:
            return self._error(400, "bad.request", f"Invalid RoutingConversationAttributesRequest: {body!r}")
        if set(body) - self.routing_modelled:
            unmodelled = ", ".join(sorted(set(body) - self.routing_modelled))
            return self._error(400, "bad.request", f"The fake org does not model {unmodelled}")
        priority, skill_ids, language_id = body.get("priority", 0), body.get("skillIds", []), body.get("languageId", "")
        # null is refused too: the API docs say never to send it, and what the real API makes of it is unverified
        if type(priority) is not int or abs(priority) > PRIORITY_LIMIT:
            return self._error(400, "bad.request",
                               f"priority must be an integer from -{PRIORITY_LIMIT} to {PRIORITY_LIMIT}")
        if not isinstance(skill_ids, list) or not all(isinstance(s, str) for s in skill_ids) \
                or not isinstance(language_id, str) or not isinstance(body.get("skillExpression", ""), str):
            return self._error(400, "bad.request", "skillIds must be a list of ids and languageId an id or \"\"")
        conversation = self.conversations.get(conversation_id)
        if conversation is None:
            return self._error(404, "not.found", f"Conversation {conversation_id} not found")
        waiting = [p for p in conversation["participants"] if p["purpose"] == "acd" and "endTime" not in p]
        if not waiting:
            return self._error(400, NOT_IN_QUEUE, f"Conversation {conversation_id} is not waiting in a queue")
        unknown = [s for s in skill_ids if s not in self.skills]
        if language_id and language_id not in self.languages:
            unknown.append(language_id)
        if unknown:
            return self._error(400, "invalid.value", f"Unknown skill or language ids: {', '.join(unknown)}")
        routing = waiting[-1]["conversationRoutingData"]
        if "priority" in body:
            routing["priority"] = priority
        if "skillIds" in body:
            routing["skills"] = [ref(self.skills[s]) for s in dict.fromkeys(skill_ids)]
        if "languageId" in body:
            routing.pop("language", None)
            if language_id:
                routing["language"] = ref(self.languages[language_id])
        if body.get("skillExpression"):
            routing["skillExpression"] = body["skillExpression"]
        elif "skillExpression" in body:  # "" removes it
            routing.pop("skillExpression", None)
        self.routing_changes.append({"conversationId": conversation_id, "body": copy.deepcopy(body)})
        self._changed(f"routing of {conversation_id} set: {json.dumps(body, sort_keys=True)}")
        answer: dict[str, Any] = {"priority": routing["priority"],
                                  "skills": [copy.deepcopy(self.skills[s["id"]]) for s in routing["skills"]]}
        if "language" in routing:
            answer["language"] = copy.deepcopy(self.languages[routing["language"]["id"]])
        if "skillExpression" in routing:
            answer["skillExpression"] = routing["skillExpression"]
        return self._json(answer)

    def _patch_attributes(self, conversation_id: str, participant_id: str, *, body: Any, **_: Any) -> Reply:
        """Merge string values into a participant's data; answer 202 with all of it."""
        attributes = body.get("attributes") if isinstance(body, dict) and set(body) == {"attributes"} else None
        if not isinstance(attributes, dict) or not all(isinstance(v, str) for v in attributes.values()):
            return self._error(400, "bad.request", f"Invalid ParticipantAttributes (values must be strings): {body!r}")
        conversation, participant = self._leg(conversation_id, participant_id)
        if participant is None:
            return self._error(404, "not.found", "The conversation or participant was not found")
        participant["attributes"].update(attributes)
        self._changed(f"participant data of {conversation_id} set: {json.dumps(body.get('attributes'))}")
        self.attribute_changes.append({"conversationId": conversation_id, "participantId": participant_id,
                                       "attributes": dict(attributes)})
        return self._json({"attributes": dict(participant["attributes"])}, 202)

    def _search_users(self, *, body: Any, **_: Any) -> Reply:
        try:
            criteria = body["query"][0]
            assert criteria["type"] == "EXACT" and criteria["fields"] == ["email"]
        except (KeyError, IndexError, TypeError, AssertionError):
            return self._error(400, "invalid.value", "Unsupported user search")
        found = [copy.deepcopy(u) for u in self.users.values() if u["email"].lower() == criteria["value"].lower()]
        result: dict[str, Any] = {"total": len(found), "pageCount": 1, "pageSize": 25, "pageNumber": 1,
                                  "types": ["users"]}
        if found:
            result["results"] = found
        return self._json(result)


    # --- the Notifications API ---------------------------------------------------------------

    def _create_channel(self, **_: Any) -> Reply:
        """A Channel {id, connectUri, expires}; a 21st channel removes the oldest, as Genesys does (per client)."""
        channel_id = new_id()
        self.channels[channel_id] = {"topics": [], "expires": time.monotonic() + self.channel_ttl, "outbox": None}
        while len(self.channels) > CHANNELS_PER_CLIENT:
            self._close_channel(next(iter(self.channels)))
        expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=self.channel_ttl)
        return self._json({"id": channel_id, "connectUri": f"{self.stream_url}/channels/{channel_id}",
                           "expires": expires.isoformat(timespec="milliseconds").replace("+00:00", "Z")})

    def _channel(self, channel_id: str) -> dict[str, Any] | None:
        """The channel, unless it expired (then it is gone, its socket closed)."""
        channel = self.channels.get(channel_id)
        if channel is not None and channel["expires"] <= time.monotonic():
            self._close_channel(channel_id)
            return None
        return channel

    def _close_channel(self, channel_id: str) -> None:
        channel = self.channels.pop(channel_id)
        if channel["outbox"] is not None:
            channel["outbox"].put(SOCKET_CLOSE)

    def _channel_exists(self, channel_id: str, **_: Any) -> Reply:
        return Reply(200) if self._channel(channel_id) else self._error(404, "not.found", "Channel not found")

    def _subscribe(self, channel_id: str, *, body: Any, add: bool = False, **_: Any) -> Reply:
        """PUT (replace) or POST (add) a channel's topics; a ChannelTopicEntityListing marks each Permitted or Rejected.

        Queue topics are v2.routing.queues.{id}.conversations.calls and ...callbacks. Subscribing
        again extends the channel's life (channel_ttl from now).
        """
        channel = self._channel(channel_id)
        if channel is None:
            return self._error(404, "not.found", f"Channel {channel_id} not found")
        if not isinstance(body, list) or not all(isinstance(t, dict) and set(t) <= {"id", "selfUri"}
                                                 and isinstance(t.get("id"), str) for t in body):
            return self._error(400, "bad.request", f"Invalid list of ChannelTopic: {body!r}")
        entities, topics = [], list(channel["topics"]) if add else []
        for topic in (t["id"] for t in body):
            match = re.fullmatch(rf"v2\.routing\.queues\.{ID}\.conversations\.(calls|callbacks)", topic)
            if not match or match.group(1) not in self.queues:
                entities.append({"id": topic, "state": "Rejected", "rejectionReason": "Topic not found"})
            elif self.missing_topic_permissions is not None:
                entities.append({"id": topic, "state": "Rejected", "rejectionReason": "Missing permissions",
                                 "missingPermissions": list(self.missing_topic_permissions)})
            else:
                entities.append({"id": topic, "state": "Permitted", "selfUri": f"/api/v2/routing/queues/{match[1]}"})
                topics.append(topic)
        channel["topics"] = list(dict.fromkeys(topics))
        channel["expires"] = time.monotonic() + self.channel_ttl
        return self._json({"entities": entities})

    def notify(self, conversation_id: str) -> None:
        """Send the conversation, as a queue topic's eventBody, to every socket subscribed to a queue it is in."""
        with self.lock:
            conversation = self.conversations[conversation_id]
            callback = any("callbacks" in p for p in conversation["participants"])
            queues = {p["queueId"] for p in conversation["participants"] if p.get("queueId")}
            topics = {f"v2.routing.queues.{queue}.conversations.{'callbacks' if callback else 'calls'}"
                      for queue in queues}
            if self.lose_events:
                return
            for channel_id in list(self.channels):
                channel = self._channel(channel_id)
                if channel is None or channel["outbox"] is None:
                    continue
                for topic in topics.intersection(channel["topics"]):
                    self.events_sent += 1
                    channel["outbox"].put({"topicName": topic, "version": "2", "eventBody": self._event_body(
                        conversation), "metadata": {"CorrelationId": new_id()}})

    def _event_body(self, conversation: dict[str, Any]) -> dict[str, Any]:
        """A QueueConversationCallEventTopicCallConversation (or its callback twin): flat participants."""
        participants = []
        for p in conversation["participants"]:
            media = self._media(p)[0]
            flat = {"id": p["id"], "purpose": p["purpose"], "state": media["state"], "startTime": p.get("startTime"),
                    "connectedTime": p.get("connectedTime"), "endTime": p.get("endTime"), "held": media.get("held"),
                    "name": p.get("name"), "address": p.get("address"), "attributes": dict(p.get("attributes", {}))}
            if p.get("queueId"):
                flat["queue"] = {"id": p["queueId"]}
            if p.get("userId"):
                flat["user"] = {"id": p["userId"]}
            if "callbacks" in p:
                flat["callbackNumbers"] = media.get("callbackNumbers")
                flat["callbackScheduledTime"] = media.get("callbackScheduledTime")
            if p.get("conversationRoutingData"):
                flat["conversationRoutingData"] = copy.deepcopy(p["conversationRoutingData"])
            participants.append({key: value for key, value in flat.items() if value is not None})
        return {"id": conversation["id"], "participants": participants}

    def open_socket(self, channel_id: str) -> Any:
        """A socket connected to the channel: its outbox (a queue of messages), or None for an unknown channel.

        One socket per channel: a second one closes the first.
        """
        with self.lock:
            channel = self._channel(channel_id)
            if channel is None:
                return None
            if channel["outbox"] is not None:
                channel["outbox"].put(SOCKET_CLOSE)
            channel["outbox"] = queue.Queue()
            self.sockets_opened += 1
            return channel["outbox"]

    def socket_closed(self, channel_id: str, outbox: Any) -> None:
        with self.lock:
            channel = self.channels.get(channel_id)
            if channel is not None and channel["outbox"] is outbox:
                channel["outbox"] = None

    def socket_closing(self) -> None:
        """Maintenance: every socket gets v2.system.socket_closing, and closes SOCKET_GRACE seconds later."""
        with self.lock:
            for channel in self.channels.values():
                if channel["outbox"] is not None:
                    channel["outbox"].put({"topicName": "v2.system.socket_closing", "version": "2",
                                           "eventBody": {"message": "Socket closing for maintenance"}})
                    channel["outbox"].put(SOCKET_CLOSE_LATER)

    def drop_sockets(self) -> None:
        """Every socket is cut without a close frame, as by a network failure."""
        with self.lock:
            for channel in self.channels.values():
                if channel["outbox"] is not None:
                    channel["outbox"].put(SOCKET_DROP)


@dataclasses.dataclass
class Scenario:
    """A fake org with two queues, an agent on a call from Support, a call waiting in Support, skills and languages."""

    org: FakeOrg
    support: str
    billing: str
    agent: str
    agent_call: str
    waiting_call: str
    # name → id; "Billing" is a prefix of "Billing Escalations", "Spanish Support" is inactive
    skills: dict[str, str] = dataclasses.field(default_factory=dict)
    languages: dict[str, str] = dataclasses.field(default_factory=dict)  # name → id: English, Spanish

    def fill(self, text: str) -> str:
        """Put this scenario's ids into a template such as "--user-id {agent}"."""
        return text.format(support=self.support, billing=self.billing, agent=self.agent,
                           agent_call=self.agent_call, waiting=self.waiting_call)


def build_scenario(**options: Any) -> Scenario:
    org = FakeOrg(**options)
    support, billing = org.add_queue("Support"), org.add_queue("Billing Overflow")
    agent = org.add_user("Ada Agent", "ada@example.com")
    skills = {name: org.add_skill(name) for name in ("Billing", "Billing Escalations")}
    skills["Spanish Support"] = org.add_skill("Spanish Support", state="inactive")
    languages = {name: org.add_language(name) for name in ("English", "Spanish")}
    return Scenario(org, support, billing, agent, org.add_agent_call(agent, support), org.add_waiting_call(support),
                    skills, languages)


@contextlib.contextmanager
def serve(org: FakeOrg, port: int = 0) -> Iterator[str]:
    """Serve the org over HTTP on 127.0.0.1 (port 0: a free one); yields the base URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            content = self.rfile.read(length) if length else b""
            if org.latency:
                time.sleep(org.latency)
            reply = org.respond(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, content)
            if reply.delay or reply.action == "timeout":
                time.sleep(reply.delay or 30)
            if reply.action in ("drop", "timeout"):
                self.close_connection = True
                return
            data = reply.encoded()
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if data and "Content-Type" not in reply.headers:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.headers.get("Upgrade", "").lower() == "websocket":
                self._websocket()
            else:
                self._answer()

        do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _answer

        def _websocket(self) -> None:
            """A channel's socket (/channels/{id}): the handshake, then the channel's outbox, and heartbeats."""
            import hashlib

            from wsproto.connection import Connection, ConnectionType
            from wsproto.events import CloseConnection, Message, Ping

            channel_id = self.path.rsplit("/", 1)[-1]
            with org.lock:
                refusal = 403 if org.block_websockets else org.websocket_refusals.pop(0) \
                    if org.websocket_refusals else None
            outbox = None if refusal else org.open_socket(channel_id)
            if outbox is None:
                status = refusal or 404
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            key = self.headers.get("Sec-WebSocket-Key", "")
            accept = base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()).decode()
            self.send_response(101)
            for name, value in (("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept)):
                self.send_header(name, value)
            self.end_headers()
            self.wfile.flush()
            self.close_connection = True
            connection = Connection(ConnectionType.SERVER)
            beat = time.monotonic() + org.heartbeat_period
            close_at = math.inf
            try:
                while True:
                    try:
                        item = outbox.get(timeout=max(0.01, min(beat, close_at, time.monotonic() + 0.1)
                                                      - time.monotonic()))
                    except queue.Empty:
                        item = None
                    if select.select([self.connection], [], [], 0)[0]:  # the client's frames: a close, a ping
                        data = self.connection.recv(65536)
                        if not data:
                            return
                        connection.receive_data(data)
                        for event in connection.events():
                            if isinstance(event, (CloseConnection, Ping)):
                                self.wfile.write(connection.send(event.response()))
                                self.wfile.flush()
                            if isinstance(event, CloseConnection):
                                return
                    if item == SOCKET_DROP:
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    if item == SOCKET_CLOSE or time.monotonic() >= close_at:
                        self.wfile.write(connection.send(CloseConnection(code=1001, reason="closing")))
                        return
                    if item == SOCKET_CLOSE_LATER:
                        close_at = time.monotonic() + SOCKET_GRACE
                        continue
                    if item is None and time.monotonic() >= beat:
                        beat = time.monotonic() + org.heartbeat_period
                        item = {"topicName": "channel.metadata", "eventBody": {"message": "WebSocket Heartbeat"}}
                    if item is not None and not org.silent_sockets:
                        self.wfile.write(connection.send(Message(data=json.dumps(item))))
                        self.wfile.flush()
            except OSError:
                return
            finally:
                org.socket_closed(channel_id, outbox)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    org.stream_url = f"ws://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def build_demo(calls: int = 12, without: tuple[str, ...] = ()) -> tuple[Scenario, list[str]]:
    """The demo org: the scenario, and `calls` calls waiting in Support (the first twelve always the same).

    Ids are seeded: the README's transcripts run as printed against a fresh demo. `without` drops
    permissions from the OAuth client's role (to see --check say so).
    """
    IDS.seed(2026)  # the same ids every run: the README's transcripts run as printed against a fresh demo
    scenario = build_scenario(transfer_delay=0.3, latency=0.05, permissions=ALL_PERMISSIONS - set(without))
    org, skills, languages = scenario.org, scenario.skills, scenario.languages
    needs: list[dict[str, Any]] = [  # the eleven more calls: distinct callers, some with routing needs
        {"caller": "+13175551234", "priority": 10, "skill_ids": [skills["Billing"]],
         "language_id": languages["Spanish"]},
        {"caller": "+15550101", "priority": 5},
        {"caller": "+15550102", "skill_ids": [skills["Billing Escalations"]]},
        {"caller": "+15550103", "language_id": languages["English"]},
        *({"caller": f"+155501{n:02d}"} for n in range(4, 11)),
        *({"caller": f"+155502{n:04d}"} for n in range(max(0, calls - 12)))][:max(0, calls - 1)]
    # They have waited 2 to 22 minutes (the first twelve), oldest first, so that --waiting-over has a choice.
    now = dt.datetime.now(dt.timezone.utc)
    waiting = [scenario.waiting_call, *(org.add_waiting_call(scenario.support, **need, started=(
        now - dt.timedelta(minutes=max(1, 22 - 2 * n))).isoformat()) for n, need in enumerate(needs))]
    if calls < 1:
        org.end_call(scenario.waiting_call)
        waiting = []
    return scenario, waiting


def demo(port: int, arrive_every: float | None = None, calls: int = 12, without: tuple[str, ...] = ()) -> None:
    """Serve a demo org on 127.0.0.1:port until Ctrl-C, printing the settings to try the script with.

    Each change the org accepts is printed as it happens, and where every call is at the end.
    With arrive_every, a new call arrives in Support every that many seconds (for --follow).
    """
    scenario, waiting = build_demo(calls, without)
    org, languages = scenario.org, scenario.languages
    names = {entity["id"]: entity["name"] for entity in (*org.skills.values(), *org.languages.values())}
    skill_list = ", ".join(f"{skill['name']} {skill['id']} ({skill['state']})" for skill in org.skills.values())
    with serve(org, port) as base_url:
        print(f"fake Genesys Cloud org on {base_url} (Ctrl-C to stop)\n"
              f"export GENESYS_API_HOST={base_url}\n"
              f"export GENESYS_CLIENT_ID={org.client_id}\n"
              f"export GENESYS_CLIENT_SECRET={org.client_secret}\n"
              f"# agent Ada Agent (ada@example.com) {scenario.agent} is on call {scenario.agent_call} from Support\n"
              f"# queues: Support {scenario.support}, Billing Overflow {scenario.billing}\n"
              f"# skills: {skill_list}\n"
              f"# languages: {', '.join(f'{name} {i}' for name, i in languages.items())}\n"
              f"# calls waiting in Support: {' '.join(waiting)}", flush=True)
        for call in waiting:
            routing = org.routing_of(call) or {}
            caller = org.conversations[call]["participants"][0]["ani"]
            wanted = ", ".join(names[skill["id"]] for skill in routing.get("skills", [])) or "-"
            language = names[routing["language"]["id"]] if "language" in routing else "-"
            print(f"#   {call}: caller {caller}, priority {routing.get('priority', 0)}, skills {wanted}, "
                  f"language {language}", flush=True)
        if without:
            print(f"# the OAuth client's role lacks {', '.join(without)}", flush=True)
        if arrive_every:
            print(f"# a new call arrives in Support every {arrive_every:g}s", flush=True)
        org.on_change = lambda words: print(f"# org: {words}", flush=True)
        try:
            for n in itertools.count():
                time.sleep(arrive_every or 3600)
                if arrive_every:
                    org.add_waiting_call(scenario.support, caller=f"+1555060{n % 10000:04d}")
        except KeyboardInterrupt:
            print(f"# where the calls are now:\n{org.state()}", flush=True)


TOUR = [  # (what it shows, the arguments of transfer_call.py)
    ("Look first: the agent's call, where it is and the leg that would move",
     ["--user-email", "ada@example.com", "--list"]),
    ("Move the agent's call to Billing Overflow, and check it landed",
     ["--user-email", "ada@example.com", "--queue-name", "Billing Overflow"]),
    ("Look at what waits in Support", ["--from-queue", "Support", "--list"]),
    ("Evacuate Support: move every waiting call to Billing Overflow",
     ["--from-queue", "Support", "--queue-name", "Billing Overflow", "--yes"]),
]


def tour(calls: int = 3, without: tuple[str, ...] = ()) -> int:
    """Run transfer_call.py against a demo org on a free loopback port, as the README's first command does: print
    each command and what it printed, then where the calls are; stop the org. Returns 0 when every step did."""
    import subprocess
    import tempfile

    scenario, _ = build_demo(calls, without)
    org, failed = scenario.org, 0
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "transfer_call.py")
    with serve(org) as base_url, tempfile.TemporaryDirectory() as home:
        print(f"A demo Genesys Cloud org runs on {base_url}: agent Ada Agent (ada@example.com) is on a call from "
              f"Support, {max(0, calls)} more calls wait there"
              f"{'; the client lacks ' + ', '.join(without) if without else ''}.\n")
        for what, argv in TOUR:
            shown = " ".join(f'"{a}"' if " " in a else a for a in argv)
            print(f"# {what}\n$ python transfer_call.py {shown}", flush=True)
            done = subprocess.run([sys.executable, script, *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, timeout=120, env=script_environment(org, base_url, HOME=home),
                                  stdin=subprocess.DEVNULL)
            shown = re.sub(r"^\S+Z (?=transfer_call: )", "", done.stdout, flags=re.MULTILINE)  # as on a terminal
            print(f"{shown}(exit {done.returncode})\n", flush=True)
            failed += done.returncode != 0
        print(f"# Where the calls are now, as the demo org sees them:\n{org.state()}\n")
    print("The demo org has stopped. To try commands of your own against it, see the README: "
          "\"Trying it\".")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="fake_org.py", description="Serve a demo fake Genesys Cloud org on 127.0.0.1 until Ctrl-C, and print "
        "the exports to point transfer_call.py at it, with the ids of its agent, queues, skills, languages and calls.")
    parser.add_argument("port", nargs="?", type=int, default=8089,
                        help="port on 127.0.0.1 (default 8089; 0: a free one)")
    parser.add_argument("--calls", type=int, metavar="N",
                        help="calls waiting in Support at the start (default 12; 3 with --tour)")
    parser.add_argument("--without", action="append", default=[], metavar="PERMISSION",
                        help="drop this permission from the OAuth client's role (repeatable), e.g. "
                             "routing:queue:view")
    parser.add_argument("--arrive-every", type=float, metavar="SECONDS",
                        help="a new call arrives in Support every SECONDS (to try --follow)")
    parser.add_argument("--tour", action="store_true", help="instead of serving until Ctrl-C: run transfer_call.py "
                        "against the demo org (look, move an agent's call, evacuate the queue), show it, and stop")
    args = parser.parse_args(argv)
    unknown = set(args.without) - ALL_PERMISSIONS
    if unknown:
        parser.error(f"--without {', '.join(sorted(unknown))}: not a permission the demo org knows "
                     f"({', '.join(sorted(ALL_PERMISSIONS))})")
    if args.tour:
        sys.exit(tour(3 if args.calls is None else args.calls, tuple(args.without)))
    try:
        demo(args.port, args.arrive_every, 12 if args.calls is None else args.calls, tuple(args.without))
    except OSError as exc:  # the port is taken, most often by a demo org left running
        parser.exit(1, f"fake_org.py: cannot serve on 127.0.0.1:{args.port}: {exc.strerror}; stop what uses it, "
                       "or give another port\n")


if __name__ == "__main__":
    main()
