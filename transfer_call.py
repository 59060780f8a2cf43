#!/usr/bin/env python3
# /// script
# requires-python = ">=3.10"
# dependencies = [
#   "PureCloudPlatformClientV2==269.0.0",
#   "httpx==0.28.1",
#   "httpx-ws==0.9.0",
#   "python-dotenv==1.2.4",
#   "phonenumberslite==9.0.42",
#   "tqdm==4.70.1",
# ]
# ///
"""Blind-transfer live Genesys Cloud voice calls to another queue, check that they landed, and set how they route.

Find the call by agent (--user-id / --user-email), conversation (--conversation-id) or caller
(--caller); or take every call waiting in a queue (--from-queue, --waiting-over), a list
(--conversations-file), or an earlier run's moves to put back (--undo). Replace the agent's (or
the waiting call's queue) participant with the target queue (--queue-id / --queue-name) through
POST /api/v2/conversations/{id}/participants/{id}/replace/queue, then re-read the call until it
is seen in the target queue. Callbacks waiting in a queue move too (--media voice,callback, or
named by id), by their own endpoints. --priority, --skill, --language and --attribute set its
routing and participant data on the move, or, with no target queue, where it waits. --check
probes the OAuth client's permissions without changing anything. --follow keeps moving the
calls that arrive in --from-queue for a while, as Notifications API events tell of them.

Every mode runs one pipeline: select the calls, plan their requests, send them paced by the
org's rate limit, verify, and report each fact about a call as soon as it is known (a moved
call's line when its transfer is accepted, its final line once verified). Reruns are safe: a
call already in the target queue, done by the run whose result lines are read, or whose
transfer from this machine is not applied yet, is not sent again.

Credentials come from GENESYS_CLIENT_ID and GENESYS_CLIENT_SECRET (an OAuth client-credentials
client); the org from GENESYS_REGION or GENESYS_API_HOST. Flags win over the environment, which
wins over a .env file. Exit codes: 0 done; 8 partly done (something changed, not all of it was
done or confirmed); every other code means nothing was changed: 1 unexpected, 2 usage or
configuration, 3 auth or permission, 4 no live call to act on, 5 refused, 6 unavailable (retry
later), 7 another run is acting on these calls (retry later), 129/130/143 stopped by
SIGHUP/SIGINT/SIGTERM. See README.md.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # first, before any other import: a signal while starting ends the run cleanly
    import _signal  # built in, where `signal` imports enum first
    import time as started  # built in too

    STARTING = {getattr(_signal, name): name for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(_signal, name)}

    def stopped_while_starting(signum: int, frame: object) -> None:
        reason = f"stopped by {STARTING[signum]} while starting; nothing was sent"
        os.write(2, f"transfer_call: {reason}\n".encode())
        if "--json" in sys.argv:  # the summary record every --json run ends with (Report.end), written by hand
            counts = ", ".join(f'"{n}": 0' for n in ("failed", "moved", "notSent", "skipped", "unknown", "updated",
                                                      "verified"))
            os.write(1, (f'{{"changed": false, "counts": {{{counts}}}, "exitCode": {128 + signum}, "reason": "{reason}", '
                         f'"requests": 0, "summary": true, "timestamp": "{started.strftime("%Y-%m-%dT%H:%M:%S", started.gmtime())}'
                         f'.{int(started.time() * 1000) % 1000:03d}Z"}}\n').encode())
        os._exit(128 + signum)

    for number in STARTING:
        if _signal.getsignal(number) != _signal.SIG_IGN:  # ignored (nohup, a background job): stays ignored
            _signal.signal(number, stopped_while_starting)

import argparse
import collections
import contextlib
import dataclasses
import datetime as dt
import enum
import functools
import importlib.util
import io
import json
import logging
import math
import queue
import random
import re
import signal
import textwrap
import threading
import time
import types
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: --help and configuration errors must answer at once
    import httpx

__version__ = "1.1.0"
__all__ = ["ExitCode", "TransferCallError", "Settings", "Plan", "Call", "Org", "make_org", "authenticate",
           "find_call", "find_agent_call", "find_caller_call", "select_calls", "transfer", "wait_for_transfer",
           "change_routing", "send_calls", "run", "exit_decision", "parse_args", "resolve_settings", "main"]

log = logging.getLogger("transfer_call")

DEFAULT_REGION = "us-east-1"
DEFAULT_WAIT = 10.0
DEFAULT_RETRY_BUDGET = 60.0
CONNECT_RETRY_BUDGET = 3.0   # seconds to keep trying a host that has never answered (DNS, refused)
CONNECT_TIMEOUT = 5.0
DEFAULT_TIMEOUT = 20.0       # read timeout of one request
POLL_INTERVAL = 0.5          # between verification reads of the conversation
ANALYTICS_RETRIES = 2        # extra details queries when analytics has not caught up yet
ANALYTICS_RETRY_DELAY = 1.5
SETTLE_TIME = 3.0            # how long to watch for an ambiguous transfer to take effect
DEFAULT_CONCURRENCY = 4
CONFIRM_ABOVE = 10           # a bulk run moving more calls than this needs a "yes"
JOURNAL_WINDOW = 600.0       # seconds a transfer this machine sent, not applied yet, holds back another of its leg
PAGE_SIZE = 100              # the details query's largest page
PROGRESS_EVERY = 2.0         # seconds between progress lines of a bulk run
VERIFY_EVERY = 10.0          # seconds between checks of a bulk run's moved calls while it still sends
FOLLOW_VERIFY_EVERY = 2.0    # the same while a --follow window lasts: arrivals are few, and a stop comes any time
RATE_WINDOW = 60.0           # Genesys counts its request limit per minute
LISTING_EVERY = 60.0         # --follow: seconds between listings of the source queue, for the events missed
POLLING_EVERY = 10.0         # --follow without events (no channel, or its socket down): seconds between listings
HEARTBEAT = 30.0             # Genesys' WebSocket heartbeat period: silence for twice this is a dead socket
RECONNECT_MAX = 30.0         # --follow: most seconds between two attempts to reconnect the event socket
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
ENDED_CALL_STATES = frozenset({"disconnected", "terminated"})
SDK_PACKAGE = "PureCloudPlatformClientV2"
# Every request the tool sends, as the SDK's API classes define it: their method's name -> the HTTP
# method, path and model of the answer, and its kind: a read (resent freely), a change (it sets values:
# resending is harmless, but once an answer is lost it may stand), or a transfer (never resent blindly: it
# could move a call twice). `send` hands these to ApiClient.call_api, which serialises the body and
# deserialises the answer into that model exactly as the API class would, without importing the API classes
# and their hundreds of models (tests/test_sdk_loader.py checks each row against the SDK's own API modules).
Operation = collections.namedtuple("Operation", "method path answer kind")
CONVERSATION, CALLBACK = "/api/v2/conversations/{conversationId}", "/api/v2/conversations/callbacks/{conversationId}"
OPERATIONS = {
    "get_conversation": Operation("GET", CONVERSATION, "Conversation", "read"),
    "post_conversation_participant_replace_queue": Operation(
        "POST", CONVERSATION + "/participants/{participantId}/replace/queue", None, "transfer"),
    "post_analytics_conversations_details_query": Operation(
        "POST", "/api/v2/analytics/conversations/details/query", "AnalyticsConversationQueryResponse", "read"),
    "get_analytics_conversations_details": Operation(
        "GET", "/api/v2/analytics/conversations/details", "AnalyticsConversationWithoutAttributesMultiGetResponse",
        "read"),
    "get_routing_queue": Operation("GET", "/api/v2/routing/queues/{queueId}", "Queue", "read"),
    "get_routing_queues": Operation("GET", "/api/v2/routing/queues", "QueueEntityListing", "read"),
    "post_users_search": Operation("POST", "/api/v2/users/search", "UsersSearchResponse", "read"),
    "get_user": Operation("GET", "/api/v2/users/{userId}", "User", "read"),
    "patch_routing_conversation": Operation(
        "PATCH", "/api/v2/routing/conversations/{conversationId}", "RoutingConversationAttributesResponse", "change"),
    "patch_conversations_call_participant_attributes": Operation(
        "PATCH", "/api/v2/conversations/calls/{conversationId}/participants/{participantId}/attributes",
        "ParticipantAttributes", "change"),
    "post_conversations_callback_participant_replace": Operation(
        "POST", CALLBACK + "/participants/{participantId}/replace", None, "transfer"),
    "patch_conversations_callbacks": Operation(  # moves a scheduled callback
        "PATCH", "/api/v2/conversations/callbacks", "PatchCallbackResponse", "transfer"),
    "patch_conversations_callback_participant_attributes": Operation(
        "PATCH", CALLBACK + "/participants/{participantId}/attributes", "ParticipantAttributes", "change"),
    "get_routing_skill": Operation("GET", "/api/v2/routing/skills/{skillId}", "RoutingSkill", "read"),
    "get_routing_skills": Operation("GET", "/api/v2/routing/skills", "SkillEntityListing", "read"),
    "get_routing_language": Operation("GET", "/api/v2/routing/languages/{languageId}", "Language", "read"),
    "get_routing_languages": Operation("GET", "/api/v2/routing/languages", "LanguageEntityListing", "read"),
    "post_notifications_channels": Operation("POST", "/api/v2/notifications/channels", "Channel", "read"),
    "put_notifications_channel_subscriptions": Operation(
        "PUT", "/api/v2/notifications/channels/{channelId}/subscriptions", "ChannelTopicEntityListing", "read"),
}
# What a command can name, by id or by name: kind -> (read one, its id's path parameter, list by
# name, whether only active ones count: a call cannot be routed on an inactive skill or language,
# the permission the listing needs).
NAMED = {"queue": ("get_routing_queue", "queueId", "get_routing_queues", False, "routing:queue:view"),
         "skill": ("get_routing_skill", "skillId", "get_routing_skills", True, "routing:skill:view"),
         "language": ("get_routing_language", "languageId", "get_routing_languages", True, None)}
DONE_EARLIER = "done in the earlier run"  # the reason of a call a rerun on result lines finds done: not a fact
MEDIA = ("voice", "callback")  # what --media may name: a voice call, or a callback waiting in a queue
# Where each kind of stdout line goes: only result lines reach --output files, which are read back as result lines.
LINE_KINDS = {"result": ("stdout", "--output"), "listing": ("stdout",), "check": ("stdout",), "summary": ("stdout",)}
PRIORITY_LIMIT = 25_000_000   # RoutingConversationAttributesRequest.priority: -25,000,000 to 25,000,000
ATTRIBUTE_LIMIT = 256         # characters of a participant data value (Architect's cap)
DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smh]?)")   # a part of a duration: 90, 90s, 15m, 1h (1h30m: two parts)
FOLLOW_LIMIT = 86400.0       # --follow at most a day (a notification channel's life): 45h is a typo for 45m
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}
SDK_EXPORT = re.compile(r"^from \.([\w.]+) import (\w+)\s*$", re.MULTILINE)  # the SDK's __init__ lines
EPOCH = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
CHANNEL_ID = re.compile(r"(/notifications/channels/)[^/]+")  # a channel's id opens its socket: never logged


@dataclasses.dataclass(frozen=True)
class RoutingField:
    """A value a command can set on a waiting call: a key of RoutingConversationAttributesRequest, and its flags."""

    key: str                            # the body key (skillIds)
    flag: str                           # the flag that sets it (--skill)
    metavar: str
    help: str
    words: str                          # how messages name it (skills)
    shown: Callable[[Any], Any]         # its value in conversationRoutingData, or in the PATCH's answer
    clear: str | None = None            # the flag that removes it (--no-skills): () or "" is sent
    clear_help: str = ""
    named: str | None = None            # a kind of NAMED: each value is a name or id, sent as its id
    many: bool = False                  # the flag repeats: the complete new set
    parse: Callable[[str], Any] = str.strip   # the value to send from the text given, or ValueError
    invalid: str = ""                   # what a value parse refuses must be
    unset: Any = "-"                    # how --list shows it when the call has none


def parse_priority(text: str) -> int:
    value = int(text)  # a ValueError for what is no whole number
    if not -PRIORITY_LIMIT <= value <= PRIORITY_LIMIT:
        raise ValueError(value)
    return value


# What --priority, --skill and --language set (each a row: its flags, settings, plan, --list, --check and
# confirmation all come from here). The PATCH sends only the keys given.
ROUTING = (
    RoutingField("priority", "--priority", "N", "routing priority, -25000000 to 25000000; a point counts as a "
                 "minute of waiting, 0 resets", "priority", lambda data: data.priority, parse=parse_priority,
                 invalid=f"must be a whole number from -{PRIORITY_LIMIT:,} to {PRIORITY_LIMIT:,} (one point is a "
                 "minute of waiting; 0 resets)", unset=0),
    RoutingField("skillIds", "--skill", "NAME_OR_ID", "required skill, repeatable: the complete new set (names "
                 "ignore case)", "skills", lambda data: [skill.id for skill in data.skills or []],
                 clear="--no-skills", clear_help="remove every skill requirement", named="skill", many=True),
    RoutingField("languageId", "--language", "NAME_OR_ID", "required language (a name ignores case)", "language",
                 lambda data: data.language.id if data.language else "", clear="--no-language",
                 clear_help="remove the language requirement", named="language"),
)


def routing_flags(last: str = "or") -> str:
    """--priority, --skill, --language or --attribute: the flags that change how a call routes, in words."""
    return ", ".join(field.flag for field in ROUTING) + f" {last} --attribute"


def dest(flag: str) -> str:
    """argparse's attribute for a flag: --no-skills -> no_skills."""
    return flag.lstrip("-").replace("-", "_")


ENV_VARS = {
    "GENESYS_CLIENT_ID": "OAuth client id (client credentials grant)",
    "GENESYS_CLIENT_SECRET": "OAuth client secret",
    "GENESYS_REGION": f"org region, e.g. us-east-1, eu-west-1 or mypurecloud.ie (default {DEFAULT_REGION})",
    "GENESYS_API_HOST": "base URL replacing the region's host for token and API (https, or http on loopback)",
    "GENESYS_RETRY_BUDGET": f"seconds a run may spend retrying 429/5xx/network errors "
                            f"(default {DEFAULT_RETRY_BUDGET:g})",
    "GENESYS_TIMEOUT": f"seconds to wait for one answer before retrying (default {DEFAULT_TIMEOUT:g})",
    "TARGET_USER_ID": "agent whose connected call is moved (--user-id)",
    "TARGET_USER_EMAIL": "agent, by email, ignoring case (--user-email)",
    "TARGET_CONVERSATION_ID": "conversation to move (--conversation-id)",
    "TARGET_CALLER": "the live call from this number, with its country code (--caller)",
    "SOURCE_QUEUE": "queue whose waiting calls all move, by id or name ignoring case (--from-queue)",
    "TARGET_QUEUE_ID": "queue to move the call to (--queue-id)",
    "TARGET_QUEUE_NAME": "queue to move the call to, by name ignoring case (--queue-name)",
}
# Settings that say the same thing in different ways form a group: a flag of a group replaces
# every variable of that group, and the environment replaces every .env value of it.
WHICH_CALL = (("--user-id", "user_id", "TARGET_USER_ID"), ("--user-email", "user_email", "TARGET_USER_EMAIL"),
              ("--conversation-id", "conversation_id", "TARGET_CONVERSATION_ID"),
              ("--caller", "caller", "TARGET_CALLER"), ("--from-queue", "from_queue", "SOURCE_QUEUE"),
              ("--conversations-file", "conversations_file", None), ("--undo", "undo", None))
WHERE_TO = (("--queue-id", "queue_id", "TARGET_QUEUE_ID"), ("--queue-name", "queue_name", "TARGET_QUEUE_NAME"))


class ExitCode(enum.IntEnum):
    """The run's exit codes, each with what it means and whether to retry (EXIT_CODE_HELP, the README's table)."""

    def __new__(cls, code: int, meaning: str, retry: str) -> ExitCode:
        member = int.__new__(cls, code)
        member._value_, member.meaning, member.retry = code, meaning, retry
        return member

    OK = 0, ("done: moved and verified, changed in place, nothing needed, the dry-run plan found, the calls listed, "
             "or a --follow window ran to its end"), ""
    UNEXPECTED = 1, "unexpected error", "no; report it, rerun with -v for the traceback"
    USAGE = 2, ("usage or configuration error, or a named queue, user, skill or language that does not exist"), \
        "no; fix it"
    AUTH = 3, "authentication failed or permission denied", "no; fix the client or its role"
    NO_LIVE_CALL = 4, "no live call to act on: none found, or it ended or was answered first", "no"
    REFUSED = 5, "refused by Genesys Cloud", "no; read the message"
    UNAVAILABLE = 6, ("Genesys Cloud unreachable or unavailable, rate limited past the budget, or an earlier "
                      "transfer of the call still pending"), "yes, later"
    BUSY = 7, "another run on this machine (of this user: the same HOME) is acting on these calls", \
        "yes, once it has finished"
    PARTIAL = 8, ("partly done: something was changed (or may have been) but not all of it was done or confirmed; "
                  "read the result lines"), "yes: a rerun acts only on what is left"
    # 128 + the signal's number, as shells report a process a signal ended
    HANGUP = 129, "stopped by SIGHUP (terminal closed) before anything was changed", "yes"
    INTERRUPTED = 130, "stopped by SIGINT (Ctrl-C) before anything was changed", "yes"
    TERMINATED = 143, "stopped by SIGTERM (kill, a timeout) before anything was changed", "yes"


EXIT_CODE_HELP = "exit codes (retry?): every code but 0 and 8 says nothing was changed\n" + \
    "\n".join(textwrap.fill(f"{code.meaning}" + (f" ({code.retry})" if code.retry else ""), 100,
                           initial_indent=f"  {int(code):<5}", subsequent_indent=" " * 7) for code in ExitCode)


# --- exceptions: library code raises these; only main() turns them into exit codes --------

class TransferCallError(Exception):
    """Base of every expected failure; carries its exit code and the Genesys error code."""

    exit_code = ExitCode.UNEXPECTED

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class UsageError(TransferCallError):
    """Raised when flags, variables, ids or the .env file are missing, malformed or in conflict."""

    exit_code = ExitCode.USAGE


class NotFound(UsageError):
    """Raised when a queue or user the command names does not exist or is not visible to the OAuth client."""


class AuthError(TransferCallError):
    """Raised when the token is refused or the OAuth client's role lacks a permission."""

    exit_code = ExitCode.AUTH


class NoLiveCall(TransferCallError):
    """Raised when there is no live call to act on: none found, the conversation is gone, or it ended first."""

    exit_code = ExitCode.NO_LIVE_CALL


class TransferRefused(TransferCallError):
    """Raised when Genesys Cloud refuses a change (the transfer, participant data, the routing)."""

    exit_code = ExitCode.REFUSED


class Unavailable(TransferCallError):
    """Raised when Genesys Cloud cannot be reached or keeps failing past the retry budget."""

    exit_code = ExitCode.UNAVAILABLE


class OutcomeUnknown(Unavailable):
    """Raised by the transport when a transfer POST got no clear answer (5xx, timeout, undecodable): it may have been processed."""


class MaybeApplied(Unavailable):
    """Raised when a change (a PATCH) got no clear answer and then ran out of retries or was stopped: it may stand."""

    def __init__(self, message: str, *, stopped: Stopped | None = None) -> None:
        super().__init__(message)
        self.stopped = stopped


class StateError(UsageError):
    """Raised when this machine's state folder (locks, the journal of transfers) cannot be used."""

    @classmethod
    def of(cls, exc: OSError) -> StateError:
        return cls(f"cannot use the state folder ~/.cache/transfer_call ({exc.strerror}); check HOME and that "
                   "folder's permissions")


class Busy(TransferCallError):
    """Raised when another run on this machine holds the lock on the same calls (the same source queue, or lists)."""

    exit_code = ExitCode.BUSY


class Stopped(TransferCallError):
    """Raised instead of sending a request once a signal (SIGINT, SIGTERM, SIGHUP) asked the run to stop."""

    def __init__(self, reason: str, exit_code: int) -> None:
        super().__init__(f"{reason}; no further requests are sent")
        self.reason, self.exit_code = reason, exit_code


# --- settings -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Listed:
    """A call named in --conversations-file or --undo: its id and, from an earlier run's result line, what became of it."""

    conversation_id: str
    line: int
    status: str | None = None           # None: a bare conversation id
    routing: str | None = None          # the earlier run's routing step: applied | skipped | failed
    from_queue_id: str | None = None
    queue_id: str | None = None
    values: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # the routing it set (--json lines)
    undo: bool = False                  # the earlier run was an --undo
    media: str | None = None            # voice or callback, as a --json line says
    participant_id: str | None = None   # the leg the earlier run acted on
    verified: bool = False              # the earlier run saw it where it moved it

    def finished(self, plan: Plan) -> bool:
        """The earlier run did what `plan` asks: the call moved (or was found) where it moves it, with its routing.

        A rerun must not move such a call again. An in-place plan is never finished this way:
        setting the same values again changes nothing; nor is a move the earlier run did not see
        land (stopped first): the rerun reads the call, and finds it in the target queue, or not.
        """
        if plan.in_place or self.status not in ("transferred", "updated", "skipped") or self.routing == "failed" \
                or self.queue_id != plan.queue_id or self.status == "transferred" and plan.verify and not self.verified:
            return False
        if plan.routing:  # only a --json line says which values it set; otherwise the live call decides
            return self.routing == "applied" and all(
                key in self.values and same_routing_value(self.values[key], value) for key, value in plan.routing.items())
        return True


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything a run needs, resolved once from flags, environment and .env."""

    client_id: str
    client_secret: str = dataclasses.field(repr=False)
    base_url: str
    region: str | None = None           # None when GENESYS_API_HOST names the host
    user_id: str | None = None
    user_email: str | None = None
    conversation_id: str | None = None
    queue_id: str | None = None
    queue_name: str | None = None
    caller: str | None = None                 # E.164, e.g. +13175551234
    from_queue: str | None = None
    listed: tuple[Listed, ...] = ()           # --conversations-file or --undo, in order, each call once
    undo: bool = False                        # the listed calls go back where they came from
    source: str | None = None                 # the file the list or the records came from
    output: str | None = None                 # --output: a file the result lines are appended to
    waiting_over: float | None = None         # --waiting-over, seconds
    follow: float | None = None               # --follow, seconds: also move the calls that arrive for this long
    media: tuple[str, ...] = ("voice",)       # --media: what --from-queue moves
    limit: int | None = None
    yes: bool = False
    concurrency: int = DEFAULT_CONCURRENCY
    dry_run: bool = False
    list_calls: bool = False                  # --list: print the calls the selector picks, as they are; change nothing
    wait: float = DEFAULT_WAIT
    retry_budget: float = DEFAULT_RETRY_BUDGET
    timeout: float = DEFAULT_TIMEOUT
    check: bool = False
    output_json: bool = False
    routing: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # ROUTING key -> as given (names, ids)
    attributes: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def single(self) -> bool:
        """One call named (by agent, conversation or caller), as opposed to a bulk selection."""
        return not (self.from_queue or self.source)

    @property
    def read_only(self) -> bool:
        """--dry-run or --list: nothing is sent that changes anything, so no lock is needed."""
        return self.dry_run or self.list_calls

    @property
    def in_place(self) -> bool:
        """No target queue: the calls stay where they wait and only their routing or data change."""
        return not (self.queue_id or self.queue_name or self.undo)

    @property
    def changes_routing(self) -> bool:
        return bool(self.routing)


def read_env_file(path: str | None) -> dict[str, str]:
    """KEY=VALUE pairs of the .env file at path (None: no file); never touches os.environ."""
    if path is None:
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read env file {path}: {getattr(exc, 'strerror', None) or 'not UTF-8 text'}; fix "
                         "the path or its permissions") from None
    dotenv = import_dependency("dotenv")
    from dotenv.parser import parse_stream

    # A quote left open runs on to the next one (python-dotenv reads quoted values across lines): refused too, or
    # the lines it swallowed (the secret's among them) would reach a message about the value.
    bad = [binding.original.line for binding in parse_stream(io.StringIO(text))
           if binding.error or "\n" in (binding.value or "")]
    if bad:  # named by number, never quoted: the file holds the secret
        lines = ", ".join(map(str, bad))
        raise UsageError(f"env file {path}: line{'s' if len(bad) > 1 else ''} {lines} cannot be read as KEY=VALUE "
                         "(an unclosed quote?); fix it")
    return {key: value for key, value in dotenv.dotenv_values(stream=io.StringIO(text)).items() if value is not None}


def import_dependency(name: str) -> Any:
    """Import one of requirements.txt's packages, or say how to install them (exit 2)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise UsageError(f"the Python package {name!r} is not installed in {sys.executable}; "
                         "run: pip install -r requirements.txt (in the project's virtual environment)") from None


def region_hosts() -> dict[str, str]:
    """Map region names (us_east_1, ...) to API base URLs from the SDK's PureCloudRegionHosts.

    The module is loaded on its own: it needs nothing else from the SDK.
    """
    spec = importlib.util.find_spec(SDK_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        import_dependency(SDK_PACKAGE)
    path = os.path.join(list(spec.submodule_search_locations)[0], "purecloud_region_hosts.py")
    module_spec = importlib.util.spec_from_file_location("_genesys_region_hosts", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return {region.name: region.value for region in module.PureCloudRegionHosts}


def region_base_url(region: str, hosts: Mapping[str, str]) -> str | None:
    """The API base URL for a region name (us-east-1 or us_east_1) or bare domain, or None."""
    name = region.strip().lower().replace("-", "_")
    if name in hosts:
        return hosts[name]
    by_domain = {url.removeprefix("https://api."): url for url in hosts.values()}
    return by_domain.get(region.strip().lower().removeprefix("api."))


def check_base_url(url: str) -> str | None:
    """Why GENESYS_API_HOST is unusable, or None; plain http is allowed only to a loopback host.

    The value is never quoted (a mistyped one may hold a password or a token): the problem names the part.
    """
    try:  # urlsplit raises on some malformed hosts (quoting them whole), .port on a port that is not a number
        parts = urllib.parse.urlsplit(url)
        hostname, _ = parts.hostname, parts.port
    except ValueError:
        parts, hostname = urllib.parse.urlsplit(""), None
    if parts.scheme not in ("http", "https") or not hostname or "@" in url or not url.isascii():
        if "@" in url or "＠" in url:
            return ("GENESYS_API_HOST must not hold a user name or password (nor a token), and its scheme must be "
                    "https:// (mistyped?); give the host alone, such as https://api.mypurecloud.com")
        return ("GENESYS_API_HOST must be a URL such as https://api.mypurecloud.com: its scheme or host is missing "
                "or malformed")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return "GENESYS_API_HOST must be a base URL with no path, query or fragment (such as https://api.mypurecloud.com)"
    if parts.scheme == "http" and not is_loopback(hostname):
        return (f"GENESYS_API_HOST uses plain http to {hostname}, which is not a loopback host; "
                "use https so credentials are not sent unencrypted")
    return None


def canonical_base_url(url: str) -> str:
    """One spelling of a checked base URL (it names the run's locks and journal): lower case, no trailing slash or
    dot, no default port."""
    parts = urllib.parse.urlsplit(url.strip().lower())
    host = parts.hostname.rstrip(".")
    host = f"[{host}]" if ":" in host else host
    port = "" if parts.port in (None, {"https": 443, "http": 80}[parts.scheme]) else f":{parts.port}"
    return f"{parts.scheme}://{host}{port}"


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_uuid(value: str) -> bool:
    """True for the canonical 8-4-4-4-12 hex form Genesys uses for every id (either case)."""
    return UUID.fullmatch(value.lower()) is not None


def resolve_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    """Merge flags over environment over .env, check every value, and report all problems at once."""
    env_file = args.env_file or (".env" if os.path.isfile(".env") else None)
    file_values = read_env_file(env_file)
    looked_in = f"the environment and {env_file}" if env_file else "the environment; no .env file was read"
    problems: list[str] = []

    def variable(name: str) -> str | None:
        return (environ.get(name) or "").strip() or (file_values.get(name) or "").strip() or None

    def group(members: tuple[tuple[str, str, str], ...]) -> dict[str, tuple[str, str]]:
        """attribute -> (value, what set it) for one setting group: its flags, else environment, else .env."""
        flags = {attr: (value.strip(), flag) for flag, attr, _ in members
                 if (value := getattr(args, attr, None)) is not None}
        for value, flag in flags.values():
            if not value:
                problems.append(f"{flag} is empty")
        chosen, where = {attr: given for attr, given in flags.items() if given[0]}, ""
        if not flags:
            for where, values in (("the environment", environ), (env_file, file_values)):
                chosen = {attr: (values[name].strip(), name) for _, attr, name in members
                          if name and (values.get(name) or "").strip()}
                if chosen:
                    break
        if len(chosen) > 1:
            names = " / ".join(label for _, label in chosen.values())
            both = "both" if len(chosen) == 2 else "all"
            problems.append(f"give only one of {names}" + (f" ({both} set in {where})" if where else ""))
        return chosen

    client_id, client_secret = variable("GENESYS_CLIENT_ID"), variable("GENESYS_CLIENT_SECRET")
    missing = [name for name, value in (("GENESYS_CLIENT_ID", client_id), ("GENESYS_CLIENT_SECRET", client_secret))
               if not value]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        problems.append(f"{' and '.join(missing)} {verb} not set (looked in {looked_in})")
    # Neither value is echoed: a secret pasted into the id would otherwise reach a log.
    if client_id and not is_uuid(client_id):
        problems.append("GENESYS_CLIENT_ID is not an OAuth client id (a UUID such as "
                        "3fa85f64-5717-4562-b3fc-2c963f66afa6); check it is not the secret")
    if client_secret and not client_secret.isascii():
        problems.append("GENESYS_CLIENT_SECRET has a character that is not ASCII (a typographic quote or dash "
                        "from a copy and paste?); paste it again")

    # The org is one setting in two forms: the environment's form replaces .env's, as for a group.
    org_source = environ if (environ.get("GENESYS_API_HOST") or environ.get("GENESYS_REGION") or "").strip() \
        else file_values
    api_host = (org_source.get("GENESYS_API_HOST") or "").strip() or None
    region = (org_source.get("GENESYS_REGION") or "").strip() or DEFAULT_REGION
    if api_host:
        problem = check_base_url(api_host)
        if problem:
            problems.append(problem)
        base_url, region = ("" if problem else canonical_base_url(api_host)), None
    else:
        hosts = region_hosts()
        base_url = region_base_url(region, hosts) or ""
        if not base_url:
            names = ", ".join(name.replace("_", "-") for name in hosts)
            problems.append(f"GENESYS_REGION {region!r} is unknown; use one of {names}")

    which, where = group(WHICH_CALL), group(WHERE_TO)
    if "undo" in which and where:  # an undo puts each call back where it came from
        if any(label.startswith("--") for _, label in where.values()):
            problems.append("--undo moves each call back to the queue it came from: drop --queue-id / --queue-name")
        where = {}
    values = {attr: value for attr, (value, _) in {**which, **where}.items()}
    routing = routing_settings(args, problems)
    attributes = parse_attributes(args.attribute or [], problems)
    # What was asked, even when malformed (already a problem): not also "say where to move it".
    changes_routing = any(getattr(args, dest(field.flag)) is not None or field.clear and getattr(args, dest(field.clear))
                          for field in ROUTING)
    attributes_asked = bool(args.attribute)
    # --check needs neither: it probes what the chosen mode needs, or everything when none is chosen.
    if not which and not args.check:
        problems.append("say which call to move: --user-id, --user-email, --conversation-id or --caller (or, for "
                        "many: --from-queue, --conversations-file, --undo)")
    if not where and not args.check and not args.list and not (changes_routing or attributes_asked) and \
            "undo" not in which:
        problems.append("say where to move it: --queue-id or --queue-name (or, to change calls where they wait: "
                        f"{routing_flags()})")
    if where and not args.check and (changes_routing or attributes_asked) and not any(
            label.startswith("--") for _, label in where.values()):
        names = " / ".join(label for _, label in where.values())
        where_set = "the environment" if environ.get(next(iter(where.values()))[1]) else env_file
        problems.append(f"{names} is set in {where_set}: with {routing_flags()} say on the command line whether "
                        "the calls move (--queue-id / --queue-name) or change where they wait (unset it)")
    if not where and not args.check and ("user_id" in values or "user_email" in values) and (
            changes_routing or attributes_asked):
        problems.append(f"without a target queue, {routing_flags('and')} change calls waiting in a queue, not an "
                        "agent's call: give --conversation-id or --from-queue")
    for attr in ("user_id", "conversation_id", "queue_id"):
        if attr in values and not is_uuid(values[attr]):
            label = {**which, **where}[attr][1]
            problems.append(f"{label} {values[attr]!r} is not an id (expected a UUID such as "
                            "3fa85f64-5717-4562-b3fc-2c963f66afa6)")
    if "user_email" in values and "@" not in values["user_email"]:
        problems.append(f"{which['user_email'][1]} {values['user_email']!r} is not an email address")
    caller = values.get("caller") and parse_caller(which["caller"][1], values["caller"], problems)
    source = values.get("conversations_file") or values.get("undo")
    listed = read_listed(source, "undo" in values, problems) if source else ()
    media = tuple(dict.fromkeys(m.strip().lower() for m in (args.media or "voice").split(",") if m.strip()))
    if not media or set(media) - set(MEDIA):
        problems.append(f"--media {args.media!r} must list {' and/or '.join(MEDIA)}, e.g. voice,callback")
    if args.media is not None and "from_queue" not in values:
        problems.append("--media goes with --from-queue (a conversation named by id or in a list is acted on as "
                        "what it is)")
    waiting_over = follow = None
    if args.waiting_over is not None:
        waiting_over = parse_duration("--waiting-over", args.waiting_over, problems)
        if "from_queue" not in values:
            problems.append("--waiting-over goes with --from-queue")
    if args.list and (args.check or args.dry_run):
        problems.append(f"--list cannot go with {'--check' if args.check else '--dry-run'}: choose one way to look")
    if args.follow is not None:
        follow = parse_duration("--follow", args.follow, problems)
        if follow is not None and not 0 < follow <= FOLLOW_LIMIT:
            problems.append(f"--follow {args.follow!r}: give how long to follow the queue, more than 0 and at most "
                            f"{duration(FOLLOW_LIMIT)} (e.g. 45m); there is no following for ever")
        if "from_queue" not in values:
            problems.append("--follow goes with --from-queue")
        clashes = [flag for flag, given in (("--dry-run", args.dry_run), ("--waiting-over", args.waiting_over),
                                            ("--limit", args.limit), ("--check", args.check), ("--list", args.list))
                   if given]
        if clashes:
            problems.append(f"--follow cannot go with {' or '.join(clashes)}: it moves every call that waits or "
                            "arrives; look first with --dry-run (without --follow)")

    def seconds(flag: str, flag_value: str | None, name: str | None, default: float, minimum: float) -> float:
        label, text = (flag, flag_value) if flag_value is not None or name is None else (name, variable(name))
        try:
            value = default if text is None else float(text)
            if not (math.isfinite(value) and value >= minimum):  # also refuses nan and inf
                raise ValueError
            return value
        except ValueError:
            problems.append(f"{label} {text!r} must be a number of seconds >= {minimum:g}")
            return default

    retry_budget = seconds("--retry-budget", args.retry_budget, "GENESYS_RETRY_BUDGET", DEFAULT_RETRY_BUDGET, 0)
    timeout = seconds("--timeout", args.timeout, "GENESYS_TIMEOUT", DEFAULT_TIMEOUT, 0.1)
    wait = seconds("--wait", args.wait, None, DEFAULT_WAIT, 0)
    if wait == 0 and (where or "undo" in which) and changes_routing:
        flags = [field.flag for field in ROUTING]
        problems.append(f"--wait 0 cannot go with {', '.join(flags[:-1])} or {flags[-1]} on a move: the routing "
                        "change needs the call seen waiting in the target queue first")
    if args.limit is not None and args.limit < 1:
        problems.append("--limit must be at least 1")
    if not 1 <= args.concurrency <= 16:
        problems.append("--concurrency must be from 1 to 16")
    from_queue = values.get("from_queue")
    if not (from_queue or source) and (args.limit is not None or args.yes):
        problems.append("--limit and --yes go with --from-queue, --conversations-file or --undo")

    if problems:
        raise UsageError("; ".join(problems))
    lower = {attr: value.lower() for attr, value in values.items()
             if attr in ("user_id", "conversation_id", "queue_id")}
    return Settings(client_id=client_id, client_secret=client_secret, base_url=base_url, region=region,
                    user_email=values.get("user_email"), queue_name=values.get("queue_name"),
                    from_queue=from_queue and (from_queue.lower() if is_uuid(from_queue) else from_queue), **lower,
                    limit=args.limit, yes=args.yes, concurrency=args.concurrency, dry_run=args.dry_run,
                    list_calls=args.list,
                    wait=wait, retry_budget=retry_budget, timeout=timeout, output_json=args.json, check=args.check,
                    routing=routing, attributes=attributes, caller=caller,
                    listed=listed, undo="undo" in values, source=source, waiting_over=waiting_over, media=media,
                    output=args.output, follow=follow)


def parse_caller(label: str, text: str, problems: list[str]) -> str | None:
    """The E.164 form of a number as people paste it (+1 (317) 555-1234, tel:+13175551234), or a problem.

    Only a number written with its country code becomes E.164 without guessing: 0044..., (317)
    555-1234 and the like are refused, as the region they were dialled from is unknown.
    """
    phonenumbers = import_dependency("phonenumbers")
    try:
        number = phonenumbers.parse(text.strip().removeprefix("tel:"), None)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_possible_number(number):
        problems.append(f"{label} {text!r} is not a phone number with its country code; give it as +<country code>"
                        "<number>, e.g. +1 317 555 1234 or +44 20 7946 0958")
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_duration(flag: str, text: str, problems: list[str]) -> float | None:
    """Seconds from 90, 90s, 15m, 1h, or parts with units such as 1h30m and 2m30s (as the tool prints them)."""
    parts = re.findall(r"\d+(?:\.\d+)?\s*[smh]?", text.strip().lower())
    if not parts or "".join(parts).replace(" ", "") != re.sub(r"\s", "", text.strip().lower()) or \
            len(parts) > 1 and not all(part.rstrip()[-1] in "smh" for part in parts):
        problems.append(f"{flag} {text!r} must be a duration such as 90, 90s, 15m, 1h or 1h30m")
        return None
    return sum(float(m.group(1)) * UNITS[m.group(2)] for m in map(DURATION.fullmatch, (p.strip() for p in parts)))


def read_lines(path: str, problems: list[str]) -> list[str] | None:
    """The lines of a file, or of standard input for "-"; None (and a problem) when it cannot be read."""
    try:
        if path == "-":
            return sys.stdin.read().splitlines()
        with open(path, encoding="utf-8-sig") as handle:  # -sig: a byte-order mark from a spreadsheet export
            return handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}")
        return None


# --- result lines: the writer (format_result, bare_line) and the reader (RESULT_LINE, parse_result_line) ---

def format_result(result: Mapping[str, Any], as_json: bool) -> str:
    """One stdout line for one call: plain text, or a JSON object with --json (RESULT_LINE reads both back)."""
    if as_json:
        return json.dumps(result, sort_keys=True)
    status, reason = result["status"], result.get("reason")
    in_place = result["queueId"] == result["fromQueueId"]
    places = [f"in queue {result['queueId']}"] if in_place and result["queueId"] else [
        *([f"from queue {result['fromQueueId']}"] * bool(result["fromQueueId"])),
        *([f"to queue {result['queueId']}"] * bool(result["queueId"]))]
    subject = " ".join([result["conversationId"], *([f"participant {result['participantId']}"] * bool(
        result["participantId"])), *places])
    if status == "dry-run":
        what = "scheduled callback" if result.get("scheduled") else "callback" if result.get("mediaType") == \
            "callback" else ""
        waited = f"waiting {result['waitingSeconds']}s" if result.get("waitingSeconds") is not None and \
            not result.get("scheduled") else ""
        waited = f" ({', '.join(part for part in (what, waited) if part)})" if what or waited else ""
        return f"dry-run {subject}{waited}: would send {'; then '.join(result['requests'])}"
    notes = [] if in_place else [{"yes": "moved", "no": "not moved", "unknown": "may have moved"}[result["moved"]]]
    if result["moved"] == "yes":
        notes.append("verified" if result["verified"] else "verifying" if not result["final"] else "not verified")
    if result.get("routing"):
        notes.append(f"routing {result['routing']}")
    if result.get("undo"):
        notes.append("put back")
    reasons = [text for text in (reason, result.get("routingReason")) if text]
    return f"{status} {subject}" + (f" ({', '.join(notes)})" if notes else "") + (
        f": {'; '.join(reasons)}" if reasons else "")


def bare_line(call: Call, timestamp: str, as_json: bool, exc: Exception) -> str:
    """The line of a call whose full line could not be made: its ids and whether it moved, as a rerun reads them."""
    record = {"conversationId": call.conversation_id, "participantId": call.participant_id,
              "fromQueueId": call.from_queue_id, "queueId": call.queue_id, "mediaType": call.media,
              "status": {"yes": "transferred", "unknown": "unknown"}.get(call.moved or "", "failed"),
              "moved": call.moved or "no", "verified": call.verified, "final": True, "timestamp": timestamp,
              "reason": f"its full result line could not be made ({type(exc).__name__}; -v shows why)"}
    if as_json:
        return json.dumps(record, sort_keys=True)
    ids = [f"participant {call.participant_id}" if call.participant_id else "",
           f"from queue {call.from_queue_id}" if call.from_queue_id else "",
           f"to queue {call.queue_id}" if call.queue_id else ""]
    notes = {"yes": "moved", "no": "not moved", "unknown": "may have moved"}[record["moved"]] + \
        (", verified" if call.verified else ", not verified" if call.moved == "yes" else "")
    return " ".join([record["status"], call.conversation_id, *filter(None, ids)]) + f" ({notes}): {record['reason']}"


# A text result line as format_result writes it: status, ids, then (notes) and ": reason", which the ids never hold.
RESULT_LINE = re.compile(
    r"(?P<status>transferred|updated|skipped|failed|not-sent|unknown|dry-run) (?P<conversationId>\S+)"
    r"(?: participant (?P<participantId>\S+))?(?: from queue (?P<fromQueueId>\S+))?"
    r"(?: (?:to|in) queue (?P<queueId>\S+))?(?: \((?P<notes>[^()]*)\))?(?:: (?P<reason>.*))?")


def parse_result_line(text: str) -> dict[str, Any] | None:
    """The record an earlier run's result line holds, JSON (--json) or text; None when it is neither."""
    if text.startswith("{"):
        try:
            record = json.loads(text)
        except ValueError:
            return None
        return record if isinstance(record, dict) else None
    match = RESULT_LINE.fullmatch(text)
    if not match:
        return None
    record = match.groupdict()
    notes = record.pop("notes") or ""
    routing = re.search(r"\brouting (applied|skipped|failed|unknown)\b", notes)
    return {**record, "routing": routing and routing.group(1), "undo": "put back" in notes,
            "verified": re.search(r"(?<!not )\bverified\b", notes) is not None,
            "fromQueueId": record["fromQueueId"]
            or (record["queueId"] if " in queue " in text.split(" (")[0] else None)}


def sent_transfer(status: str | None, from_queue_id: str | None, queue_id: str | None) -> bool:
    """A result line says its run sent a transfer: moved, or a move whose answer was lost (not an in-place change
    whose answer was lost: that one has the same queue on both sides)."""
    return status == "transferred" or status == "unknown" and from_queue_id != queue_id


def same_routing_value(shown: Any, asked: Any) -> bool:
    """A routing value a record holds is the one asked for (skill ids in any order)."""
    return sorted(shown) == sorted(asked) if isinstance(asked, list) and isinstance(shown, list) else shown == asked


def read_listed(path: str, undo: bool, problems: list[str]) -> tuple[Listed, ...]:
    """The calls --conversations-file (ids, or result lines) or --undo (result lines) names: the last line of each.

    An earlier run may have written two lines for a call (moved, then verified): the last one
    holds what became of it. Blank lines and # comments are ignored. A malformed line is named
    by its number, never quoted: the file may be one that holds a secret (.env).
    """
    lines, listed, bad = read_lines(path, problems), {}, []
    for number, line in enumerate(lines or [], 1):
        text = line.strip()
        if not text.startswith("{") and is_uuid(text.split("#", 1)[0].strip()):
            text = text.split("#", 1)[0].strip()  # an id with a comment after it
        elif text.startswith("listed ") and not undo and is_uuid(text.split(" ", 2)[1]):
            text = text.split(" ", 2)[1]  # a --list line names the call
        if not text or text.startswith("#"):
            continue
        record = parse_result_line(text) if undo or not is_uuid(text) else {"conversationId": text, "status": None}
        if record and record.get("summary") is True:  # a --json run's closing record: no call
            continue
        ids = [record.get(key) for key in ("conversationId", "fromQueueId", "queueId")] if record else [None]
        if not (isinstance(ids[0], str) and all(i is None or isinstance(i, str) and is_uuid(i) for i in ids)):
            bad.append(number)
            continue
        if str(record.get("reason") or "").startswith(DONE_EARLIER) or undo and not sent_transfer(
                record.get("status"), ids[1], ids[2]):
            continue  # a rerun's pointer to an earlier line; for an undo, anything but a move (or one that may be)
        conversation_id = ids[0].lower()
        listed.pop(conversation_id, None)  # the last line of a call counts, and its place in the list
        values = {field.key: record[field.key] for field in ROUTING if field.key in record}
        listed[conversation_id] = Listed(conversation_id, number, record.get("status"), record.get("routing"),
                                         *(i and i.lower() for i in ids[1:]), values, record.get("undo") is True,
                                         record.get("mediaType") if record.get("mediaType") in MEDIA else None,
                                         leg.lower() if isinstance(leg := record.get("participantId"), str)
                                         and is_uuid(leg) else None, record.get("verified") is True)
    where = "standard input" if path == "-" else path
    if bad:
        numbers = ", ".join(map(str, bad[:5])) + (" and more" if len(bad) > 5 else "")
        expected = "a result line of an earlier run" if undo else "a conversation id or a result line of an earlier run"
        problems.append(f"{where}: line{'s' if len(bad) > 1 else ''} {numbers} {'is' if len(bad) == 1 else 'are'} "
                        f"not {expected} (wrong file?)")
    elif lines is not None and not listed and not undo:
        problems.append(f"{where} lists no conversation ids")
    if undo and not bad and lines is not None and not listed:
        problems.append(f"{where} has no record of a transferred call: nothing to undo")
    return tuple(listed.values())


def routing_settings(args: argparse.Namespace, problems: list[str]) -> dict[str, Any]:
    """ROUTING key -> the value its flags give (names or ids as given; () or "" removes it), for each row given."""
    routing = {}
    for field in ROUTING:
        given, cleared = getattr(args, dest(field.flag)), field.clear and getattr(args, dest(field.clear))
        if given is not None and cleared:
            problems.append(f"give {field.flag} or {field.clear}, not both")
        elif cleared:
            routing[field.key] = () if field.many else ""
        elif given is not None:
            values = [text.strip() for text in (given if field.many else [given])]
            if "" in values and field.parse is str.strip:
                problems.append(f"{field.flag} is empty" + (f" (to remove the {field.words} requirement: "
                                                            f"{field.clear})" if field.clear and not field.many else ""))
                continue
            try:
                parsed = [field.parse(text) for text in values]
            except ValueError:
                problems.append(f"{field.flag} {given!r} {field.invalid}")
                continue
            routing[field.key] = tuple(dict.fromkeys(parsed)) if field.many else parsed[0]
    return routing


def parse_attributes(pairs: list[str], problems: list[str]) -> dict[str, str]:
    """--attribute KEY=VALUE flags as participant data; every malformed one is a problem."""
    attributes: dict[str, str] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        key = key.strip()
        if not equals or not key:
            problems.append(f"--attribute {pair!r} must be KEY=VALUE with a key")
        elif len(value) > ATTRIBUTE_LIMIT:
            problems.append(f"--attribute {key}: the value has {len(value)} characters; keep it to {ATTRIBUTE_LIMIT}")
        elif attributes.get(key, value) != value:
            problems.append(f"--attribute {key} is given twice with different values")
        else:
            attributes[key] = value
    return attributes


# --- pure helpers: picking participants, building requests, describing results -------------

def sessions(participant: Any) -> list[Any]:
    """A participant's voice calls, or its callbacks (a callback leg lists `callbacks` instead of `calls`)."""
    return participant.calls or participant.callbacks or []


def media_of(participant: Any) -> str:
    return "callback" if participant.callbacks and not participant.calls else "voice"


def is_live(participant: Any) -> bool:
    """A participant that has not ended and holds a call (or callback) that is not disconnected."""
    return participant.end_time is None and any(call.state not in ENDED_CALL_STATES for call in sessions(participant))


def is_connected(participant: Any) -> bool:
    return participant.end_time is None and any(call.state == "connected" for call in sessions(participant))


def is_scheduled(participant: Any) -> bool:
    """A callback not offered yet: it is changed with PATCH /api/v2/conversations/callbacks, not replaced."""
    return any(callback.state == "scheduled" for callback in participant.callbacks or [])


def transfer_pending(conversation: Any) -> bool:
    """The conversation lists a transfer not applied yet (recentTransfers; whether queue transfers show there is
    unverified)."""
    return any(transfer.state in ("Pending", "Active") for transfer in conversation.recent_transfers or [])


def is_held(participant: Any) -> bool:
    return any(call.held for call in participant.calls or [] if call.state == "connected")


def leg_rank(participant: Any) -> tuple[bool, dt.datetime]:
    """Sort key of agent legs: one not on hold before a held one, then the most recently started."""
    return not is_held(participant), participant.start_time or EPOCH


def conversation_ended(conversation: Any) -> bool:
    """Ended when Genesys set endTime or no customer/external party is still on the line."""
    if conversation.end_time is not None:
        return True
    callers = [p for p in conversation.participants or [] if p.purpose in ("customer", "external")]
    return bool(callers) and not any(is_live(p) for p in callers)


def pick_agent_participant(conversation: Any, user_id: str | None = None) -> Any | None:
    """The connected agent leg (of user_id, when given) to move: not held before held, newest first.

    During a consult a conversation has two connected agent legs, the first one held; earlier,
    ended legs remain after transfers. Both kinds are passed over while a better leg exists.
    """
    legs = [p for p in conversation.participants or []
            if p.purpose == "agent" and is_connected(p) and user_id in (None, p.user_id)]
    return max(legs, key=leg_rank, default=None)


def queue_leg(conversation: Any) -> Any | None:
    """The call's live queue (acd) leg, whether or not an agent is on the call too; None when it is in no queue."""
    return next((p for p in conversation.participants or [] if p.purpose == "acd" and is_live(p)), None)


def pick_participant_to_replace(conversation: Any) -> Any | None:
    """The agent leg to move (see pick_agent_participant), else the live acd leg of a call waiting in a queue."""
    return pick_agent_participant(conversation) or queue_leg(conversation)


def transfer_landed(conversation: Any, call: Call) -> bool:
    """True once the call is in its target queue: the replaced leg gone and a new leg there.

    In the queue means waiting there (a live acd leg) or already answered there (an agent leg of
    that queue): with agents free, the call can be answered before the first verification read.
    The call's known legs are those it had before the transfer, so that an older leg does not
    count. A scheduled callback is not replaced but changed: its own leg then names the queue.
    """
    participants = conversation.participants or []
    changed = call.scheduled and any(p.id == call.participant_id and is_live(p) and p.queue_id == call.queue_id
                                     for p in participants)
    replaced_gone = all(not is_live(p) for p in participants if p.id == call.participant_id)
    arrived = any(p.id != call.participant_id and p.id not in call.known_legs and p.queue_id == call.queue_id
                  and (p.purpose == "acd" and is_live(p) or p.purpose == "agent") for p in participants)
    return changed or replaced_gone and arrived


def waiting_leg(conversation: Any) -> Any | None:
    """The live queue (acd) leg of a call waiting in a queue, with no agent on it; None otherwise."""
    return None if pick_agent_participant(conversation) else queue_leg(conversation)


def where_is(conversation: Any) -> str:
    """Where a live call is, in a few words: waiting in a queue, with an agent, or elsewhere (the IVR)."""
    agent, leg = pick_agent_participant(conversation), waiting_leg(conversation)
    if agent:
        return f"with agent {agent.user_id}"
    return f"waiting in queue {leg.queue_id}" if leg else "not in a queue"


def caller_of(conversation: Any) -> str | None:
    """The E.164 number the customer called from (tel:+13175551234 on the customer leg), or None (withheld)."""
    for participant in conversation.participants or []:
        if participant.purpose in ("customer", "external"):
            for address in (participant.ani, participant.address):
                number = (address or "").removeprefix("tel:")
                if re.fullmatch(r"\+\d{6,15}", number):
                    return number
    return None


def describe_participants(conversation: Any) -> str:
    """A short account of who is on the call, for messages about what verification saw."""
    parts = []
    for p in conversation.participants or []:
        states = ",".join(call.state or "?" for call in sessions(p)) or "no call"
        where = f" queue {p.queue_id}" if p.queue_id else ""
        parts.append(f"{p.purpose}{where} {'ended' if p.end_time else states}")
    return "; ".join(parts) or "no participants"


def timestamp() -> str:
    """Now in UTC as result lines carry it: 2026-11-27T10:31:02.123Z."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def duration(seconds: float) -> str:
    """24h, 45m, 1h30m, 2m30s, 0.5s: a --follow window as people write it (and --follow reads it)."""
    if seconds < 60 and seconds != round(seconds):
        return f"{seconds:g}s"
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n) or "0s"


def details_query(dimensions: Mapping[str, str], now: dt.datetime, *, order: str, page: int = 1,
                  page_size: int = 25, media: tuple[str, ...] = ("voice",)) -> dict[str, Any]:
    """An analytics details query for open conversations with an open voice segment matching `dimensions`.

    Shaped like Genesys' own "current conversation by user" Data Action; the interval only has
    to touch the day the call started, so the last 24 hours plus a minute of clock skew will do.
    """
    start, end = now - dt.timedelta(days=1), now + dt.timedelta(minutes=1)
    matches = [{"type": "dimension", "dimension": name, "operator": "matches", "value": value}
               for name, value in {**dimensions, **({"mediaType": media[0]} if len(media) == 1 else {})}.items()]
    either = [{"type": "or", "predicates": [{"type": "dimension", "dimension": "mediaType", "operator": "matches",
                                             "value": medium} for medium in media]}] if len(media) > 1 else []
    return {
        "interval": f"{iso(start)}/{iso(end)}",
        "order": order,
        "orderBy": "conversationStart",
        "paging": {"pageSize": page_size, "pageNumber": page},
        "conversationFilters": [{"type": "and", "predicates": [
            {"type": "dimension", "dimension": "conversationEnd", "operator": "notExists"}]}],
        "segmentFilters": [{"type": "and", "predicates": [
            *matches, {"type": "dimension", "dimension": "segmentEnd", "operator": "notExists"}]}, *either],
    }


@dataclasses.dataclass(frozen=True)
class WaitingCall:
    """A call analytics shows waiting in a queue: its acd participant there, and since when."""

    conversation_id: str
    participant_id: str
    waiting_since: dt.datetime | None
    answered: bool
    customer_id: str | None = None  # where participant data goes
    legs: frozenset[str] = frozenset()  # every participant analytics shows
    conversation_start: dt.datetime | None = None
    media: str = "voice"


def waiting_calls(conversations: list[Any], queue_id: str, media: tuple[str, ...] = ("voice",)) -> list[WaitingCall]:
    """The calls (of these media) of a details-query answer whose acd leg has an open segment in queue_id."""
    found = []
    for conversation in conversations:
        if conversation.conversation_end is not None:
            continue
        leg, answered, medium = None, False, "voice"
        customer = next((p.participant_id for p in conversation.participants or []
                         if p.purpose in ("customer", "external")), None)
        for participant in conversation.participants or []:
            open_sessions = [session for session in participant.sessions or [] if session.media_type in media
                             and any(segment.segment_end is None for segment in session.segments or [])]
            open_segments = [segment for session in open_sessions
                             for segment in session.segments or [] if segment.segment_end is None]
            if participant.purpose == "acd" and any(seg.queue_id == queue_id for seg in open_segments):
                leg = (participant.participant_id,
                       min((seg.segment_start for seg in open_segments if seg.segment_start), default=None))
                medium = open_sessions[0].media_type
            answered = answered or (participant.purpose == "agent" and bool(open_segments))
        if leg:
            legs = frozenset(p.participant_id for p in conversation.participants or [])
            found.append(WaitingCall(conversation.conversation_id, leg[0], leg[1], answered, customer, legs,
                                     conversation.conversation_start, medium))
    return found


def transfer_body(queue_id: str) -> dict[str, str]:
    """TransferToQueueRequest (voice) or TransferRequest (callbacks): an unattended (blind) transfer by default."""
    return {"queueId": queue_id}


def scheduled_callback_body(call: Call) -> dict[str, str]:
    """PatchCallbackRequest: the scheduled callback's new queue."""
    return {"conversationId": call.conversation_id, "queueId": call.queue_id}


# How a waiting call of each medium is moved. The generic replace/queue on a callback is unverified: not relied on.
TRANSFERS = {"voice": "post_conversation_participant_replace_queue",
             "callback": "post_conversations_callback_participant_replace"}
ATTRIBUTES = {"voice": "patch_conversations_call_participant_attributes",
              "callback": "patch_conversations_callback_participant_attributes"}


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the run does to each call, with every name resolved: where it goes, how it routes, what data it carries."""

    queue_id: str | None = None      # the target queue; None: in place, or each call's own (--undo)
    queue_name: str | None = None
    in_place: bool = False           # the calls stay where they wait; only their routing or data change
    routing: Mapping[str, Any] = dataclasses.field(default_factory=dict)     # RoutingConversationAttributesRequest
    attributes: Mapping[str, str] = dataclasses.field(default_factory=dict)  # participant data for the customer
    verify: bool = True              # False with --wait 0: a move counts as done once accepted
    undo: bool = False               # each call goes back where an earlier run moved it from

    @property
    def changes(self) -> bool:
        """Anything to set besides the queue: routing or participant data."""
        return bool(self.routing or self.attributes)


@dataclasses.dataclass
class Call:
    """One call the run acts on (the leg to replace, where it goes) and what became of it: its one outcome.

    The facts are set as they become known: `moved` (yes, no or unknown) once the transfer was
    answered or watched, `verified` once the call was seen where it went, `routing` once its
    routing change was answered. The status, the record, the summary and the exit code are all
    derived from them (status, done, changed), never set on their own.
    """

    conversation_id: str
    participant_id: str | None
    purpose: str | None = None             # the leg replaced: agent, or acd for a call waiting in a queue
    user_id: str | None = None
    from_queue_id: str | None = None
    queue_id: str | None = None            # where it goes (in place: where it waits)
    queue_name: str | None = None
    waiting_since: dt.datetime | None = None
    customer_id: str | None = None         # the customer participant, where participant data goes
    known_legs: frozenset[str] = frozenset()  # the call's participants before the transfer (see transfer_landed)
    conversation_start: dt.datetime | None = None
    media: str | None = "voice"            # voice, or callback (its own endpoints); None: not read, not known
    scheduled: bool = False                # a callback not offered yet: moved by PATCH, not replaced
    move: bool = True                      # False: changed in place, where it waits
    plan: Plan = dataclasses.field(default_factory=Plan)
    # --- the outcome ---
    moved: str | None = None               # yes | no | unknown; None: no transfer answered yet (or none to send)
    verified: bool = False
    data_written: bool = False             # the plan's participant data was accepted
    routing: str | None = None             # applied | skipped | failed | unknown (no clear answer), when asked
    routing_reason: str | None = None
    skipped: bool = False                  # nothing to do, or nothing could be done: the call is gone or was answered
    sent: bool = False                     # a change request went out for it
    dry_run: bool = False
    reason: str | None = None
    error: TransferCallError | None = None
    requests: list[str] | None = None      # what a dry run would send
    cut_short: bool = False                # a signal stopped it before it was sent, or before it was verified
    started: float | None = None
    elapsed_ms: int | None = None
    reported: bool = False                 # its final line was written
    held_back: bool = False                # not sent: an earlier transfer of it may not be applied yet
    hold: str | None = None                # why an earlier transfer of its leg may still apply, as read (see held)

    def skip(self, reason: str, error: TransferCallError | None = None) -> None:
        """Nothing to do for this call (already there, done earlier), or nothing possible (ended, answered first)."""
        self.skipped, self.reason, self.error = True, reason, error
        self.moved = self.moved or "no"

    def fail(self, reason: str, error: TransferCallError | None = None) -> None:
        self.reason, self.error = reason, error

    @property
    def handed_back(self) -> bool:
        """Held back right before its transfer and handed to a --follow window to look at again (unreported)."""
        return self.held_back and not self.reported

    @property
    def decided(self) -> bool:
        """Nothing is to be sent for it: found skipped, or refused, when the calls were selected."""
        return self.skipped or self.error is not None

    @property
    def journal_key(self) -> str:
        """The leg as the journal of transfers names it: conversation, leg, and when the conversation started (whole
        seconds), so that an org that reuses ids (the demo) is not taken for the one that had them before."""
        start = self.conversation_start
        return f"{self.conversation_id} {self.participant_id} {int(start.timestamp()) if start else '-'}"

    @property
    def changed(self) -> bool:
        """Something in the org was (or may have been) changed for this call."""
        return self.moved in ("yes", "unknown") or self.data_written or self.routing in ("applied", "unknown")

    @property
    def done(self) -> bool:
        """All that was asked for this call was done (verified where verification was asked), or nothing was needed."""
        if self.dry_run:
            return True
        if self.skipped:  # nothing to do, or nothing possible: unless its participant data was written for nothing
            return not self.data_written or self.moved == "yes"
        if self.error is not None or self.cut_short or self.routing == "failed":
            return False
        if self.move:
            return self.moved == "yes" and (self.verified or not self.plan.verify) and \
                (self.routing in ("applied", "skipped") or not self.plan.routing)
        return (self.routing == "applied" or not self.plan.routing) and \
            (self.data_written or not self.plan.attributes)

    @property
    def status(self) -> str:
        if self.dry_run:
            return "dry-run"
        if self.moved == "yes":
            return "transferred"
        if self.moved == "unknown" or not self.move and self.routing == "unknown":
            return "unknown"
        if self.skipped:
            return "skipped"
        if self.done:
            return "updated"
        return "not-sent" if self.moved is None and self.error is None and (self.cut_short or not self.sent) \
            else "failed"

    @property
    def final(self) -> bool:
        """No later line will follow for this call (a moved call's first line comes before its verification)."""
        return self.moved != "yes" or self.verified or self.done or self.reason is not None or self.cut_short or \
            self.routing is not None

    def record(self) -> dict[str, Any]:
        """The call's result line as --json prints it (Report adds the timestamp)."""
        record: dict[str, Any] = {
            "conversationId": self.conversation_id, "participantId": self.participant_id, "purpose": self.purpose,
            "userId": self.user_id, "fromQueueId": self.from_queue_id, "queueId": self.queue_id,
            "queueName": self.queue_name, "mediaType": self.media, "status": self.status, "moved": self.moved or "no",
            "verified": self.verified, "final": self.final, **self.plan.routing,
            **({"undo": True} if self.plan.undo and self.moved == "yes" else {})}
        optional = {"reason": self.reason, "errorCode": self.error and self.error.code, "requests": self.requests,
                    "scheduled": self.scheduled or None,
                    "elapsedMs": self.elapsed_ms, "attributes": dict(self.plan.attributes) or None,
                    "routing": self.routing, "routingReason": self.routing_reason}
        if self.waiting_since and not self.scheduled:  # a scheduled callback has not waited yet
            optional["waitingSeconds"] = round((dt.datetime.now(dt.timezone.utc) - self.waiting_since).total_seconds())
        return {**record, **{key: value for key, value in optional.items() if value is not None}}


# --- the run's state: when to stop, and what to report ---------------------------------------

class Stop:
    """Whether the run must stop: a signal arrived (no new request is sent), or an error every further call would hit.

    Signal handlers only set it, and raise KeyboardInterrupt while nothing can have been sent
    (`preparing`), to end the run at once. A KeyboardInterrupt raised at an arbitrary point can
    be swallowed (inside an import, for one), so the transport checks the flag before every
    request: a signal at any moment before a change is sent means that change is not sent.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self.exit_code: int | None = None       # 128 + the signal's number, once one arrived
        self.signal_name: str | None = None
        self.error: TransferCallError | None = None
        self.preparing = True

    def handle(self, signum: int, frame: Any = None) -> None:
        """The signal handler for SIGINT, SIGTERM and SIGHUP."""
        if self.exit_code is None:
            self.exit_code, self.signal_name = 128 + signum, signal.Signals(signum).name
        self._event.set()
        if self.preparing:
            self.preparing = False  # once: a second signal must not interrupt the handling of the first
            raise KeyboardInterrupt

    def halt(self, error: TransferCallError) -> None:
        """Stop starting new calls after an error every further call would hit (a permission, a queue, the budget).

        Unlike a signal it wakes no sleep: retries, pacing and the verification of calls already
        moved go on as before.
        """
        self.error = self.error or error

    def is_set(self) -> bool:
        """A signal arrived, or an error halted the run: start no new call."""
        return self._event.is_set() or self.error is not None

    @property
    def signalled(self) -> bool:
        return self.exit_code is not None

    @property
    def reason(self) -> str:
        if self.signalled:
            return f"stopped by {self.signal_name}"
        return "the run stopped after an earlier error" if self.error else "stopped"

    def check(self, change: bool = False) -> None:
        """Raise Stopped once a signal asked the run to stop, or, before a `change`, once an error halted it.

        The transport calls it before every request: after a stop no change is sent, whatever was running.
        """
        if self.signalled or change and self.error is not None:
            raise Stopped(self.reason, self.exit_code or self.error.exit_code)

    def wait(self, seconds: float) -> None:
        """Sleep that a signal ends early (an error that halts the run does not)."""
        self._event.wait(seconds)


class Report:
    """Result lines on stdout (and --output), one per call as each fact becomes known; progress and the summary on stderr.

    A moved call gets its line the moment the transfer is accepted, and a second one once it was
    verified (or not): a record lost to SIGKILL is at most a request in flight. A closed stdout
    (`| head -1`, a log shipper that died) stops the result lines there, never the run.
    """

    def __init__(self, as_json: bool, stream: Any = None, output: Any = None, stop: Stop | None = None) -> None:
        self.as_json = as_json
        self.stop = stop
        self.streams = {"stdout": stream, "--output": output} if output else {"stdout": stream}
        self.transport: Transport | None = None
        self.counts: collections.Counter[str] = collections.Counter()  # final statuses
        self.moved: set[str] = set()   # conversations whose transfer was accepted
        self.handled: set[str] = set()  # conversations with a line so far (accepted, or final)
        self.moved_media: collections.Counter[str] = collections.Counter()
        self.verified = 0
        self.total = 0
        self.following = False         # --follow: no count of calls is known ahead; Follow logs progress a minute
        self.changed = False           # something in the org was (or may have been) changed
        self.requests_before = 0  # requests sent before the calls were (lookups, listing)
        self.bar: Any = None      # the live progress line on a terminal (tqdm)
        self.routing_failed = 0
        self.broken: set[str] = set()
        self.started = time.monotonic()
        self._logged = 0.0
        self._lock = threading.Lock()

    def line(self, text: str, kind: str = "result") -> None:
        """Write one line of `kind` (LINE_KINDS) to its streams, each unless writing there failed before."""
        with self._lock:
            for name, stream in self.streams.items():
                if name not in LINE_KINDS[kind]:
                    continue
                stream = stream or sys.stdout if name == "stdout" else stream
                if name in self.broken:
                    continue
                try:
                    if self.bar is not None and stream.isatty():  # above the live line, which is then redrawn
                        self.bar.write(text, file=stream)
                    else:
                        stream.write(text + "\n")
                    stream.flush()
                # A reader gone (EPIPE), a full disk (ENOSPC), a terminal gone (EIO), a closed descriptor
                # (sys.stdout is None) or stream (ValueError): the calls go on whatever happens to stdout.
                except (OSError, ValueError, AttributeError) as exc:
                    self.broken.add(name)
                    why = exc.strerror if isinstance(exc, OSError) else "it is closed" if stream is None else \
                        type(exc).__name__
                    if name == "stdout":
                        log.warning("cannot write results to stdout (%s); no more result lines are written there, "
                                    "the run goes on", why)
                        silence(stream)
                    else:  # the record asked for cannot be kept: change nothing more
                        error = UsageError(f"cannot write to the --output file ({why}); no call is changed after "
                                           "this one: free the space, then run again on the result lines")
                        log.error("error: %s", error)
                        if self.stop is not None:
                            self.stop.halt(error)

    def call(self, call: Call) -> None:
        """Write the call's line: a fact just learnt (its transfer accepted), or its final outcome."""
        final = call.final
        if final and call.started is not None:  # from its first request to its final outcome, in every mode
            call.elapsed_ms = round((time.monotonic() - call.started) * 1000)
        now = timestamp()
        try:
            text = format_result({**call.record(), "timestamp": now}, self.as_json)
        except Exception as exc:  # noqa: BLE001 - a bug here must not cost a changed call its record
            log.debug("cannot make the line of conversation %s", call.conversation_id, exc_info=True)
            text = bare_line(call, now, self.as_json, exc)
            if self.stop is not None:  # a bug: no call is started after it, as after any unexpected error
                self.stop.halt(TransferCallError(f"unexpected error: {type(exc).__name__}: {exc} (writing the line "
                                                 f"of conversation {call.conversation_id}; -v shows the traceback)"))
        self.line(text)
        with self._lock:
            self.changed = self.changed or call.changed
            if call.moved == "yes" and call.conversation_id not in self.moved:
                self.moved.add(call.conversation_id)
                self.moved_media[call.media] += 1
            first = call.conversation_id not in self.handled
            self.handled.add(call.conversation_id)
            if final:
                call.reported = True
                self.counts[call.status] += 1
                self.verified += call.verified and call.moved == "yes"
                self.routing_failed += call.routing == "failed"
            if self.bar is not None:
                self.bar.set_postfix_str(self.status(), refresh=False)
                self.bar.update(int(first))

    def end(self, code: int, reason: str | None) -> None:
        """--json: the run's summary record, stdout's last line (readers of result lines skip it: "summary": true)."""
        counts = {"moved": len(self.moved), "verified": self.verified, "updated": self.counts["updated"],
                  "unknown": self.counts["unknown"], "skipped": self.counts["skipped"],
                  "failed": self.counts["failed"], "notSent": self.counts["not-sent"]}
        now = timestamp()
        record = {"summary": True, "exitCode": int(code), "changed": self.changed, "counts": counts,
                  "requests": self.transport.requests_sent if self.transport else 0, "reason": reason,
                  "timestamp": now}
        self.line(json.dumps(record, sort_keys=True), "summary")

    def close(self) -> None:
        """Close the --output file (stdout is the interpreter's)."""
        output = self.streams.get("--output")
        if output is not None:
            with contextlib.suppress(OSError):
                output.close()

    def tick(self) -> None:
        """Called while a bulk run sends: without a live line, a progress log line every PROGRESS_EVERY seconds."""
        with self._lock:
            if self.bar is None and self.total > 1 and not self.following and time.monotonic() - max(self._logged, self.started) \
                    >= PROGRESS_EVERY:
                self._logged = time.monotonic()
                log.info("%s", self.progress())

    @contextlib.contextmanager
    def sending(self) -> Iterator[None]:
        """While calls are sent: on a terminal, one live progress line (tqdm) instead of log lines every 2 s."""
        stderr = sys.stderr
        if self.total <= 1 or self.following or stderr is None or not stderr.isatty() or not terminal_width(stderr):
            yield
            return
        tqdm = import_dependency("tqdm")
        from tqdm.contrib.logging import logging_redirect_tqdm

        with tqdm.tqdm(total=self.total, initial=len(self.handled), unit="call", file=stderr,
                       bar_format="{n}/{total} calls {bar}{postfix}", dynamic_ncols=True) as bar, \
                logging_redirect_tqdm(loggers=[log]):  # log lines print above the live line, not through it
            self.bar = bar
            try:
                yield
            finally:
                with self._lock:
                    self.bar = None

    def tally(self) -> str:
        """What became of the calls so far: moved (accepted; verified), updated in place, skipped, failed, not sent."""
        counts = self.counts
        by_media = ", ".join(plural(count, "callback") if medium == "callback" else f"{count} {medium}"
                             for medium, count in sorted(self.moved_media.items()))
        acted = [f"moved {len(self.moved)} ({self.verified} verified"
                 f"{'; ' + by_media if 'callback' in self.moved_media else ''})"] if self.moved or not counts["updated"] \
            else []
        acted += [f"updated {counts['updated']}"] if counts["updated"] else []
        acted += [f"routing not set on {self.routing_failed}"] if self.routing_failed else []
        acted += [f"outcome unknown {counts['unknown']}"] if counts["unknown"] else []
        return ", ".join([*acted, f"skipped {counts['skipped']}", f"failed {counts['failed']}",
                          f"not sent {counts['not-sent']}"])

    def progress(self) -> str:
        """The log line of a bulk run's progress: how many calls of how many were acted on, and status()."""
        return f"{len(self.handled)}/{self.total}: {self.status()}"

    def status(self) -> str:
        """The tally so far, calls a minute, and the time left, which the request rate limit may bound."""
        elapsed = max(time.monotonic() - self.started, 1e-6)
        return f"{self.tally()}; {len(self.handled) / elapsed * 60:.0f} calls/min{self.time_left()}"

    def time_left(self) -> str:
        """"; about 40s left", from the pace so far and, when it binds, the request rate limit; "" at the ends."""
        done = len(self.handled)
        if not done or done >= self.total:
            return ""
        left = (self.total - done) * max(time.monotonic() - self.started, 1e-6) / done
        transport = self.transport
        if transport and transport.allowed:  # at most `allowed` requests a minute, at the cost per call so far
            per_call = max(1.0, (transport.requests_sent - self.requests_before) / done)
            left = max(left, (self.total - done) * per_call * RATE_WINDOW / transport.allowed)
        return f"; about {left:.0f}s left"

    def summary(self) -> None:
        """The closing line of a bulk run, on stderr even when stdout is closed."""
        elapsed = time.monotonic() - self.started
        acted = len(self.moved) + self.counts["updated"]
        sent, limited = (self.transport.requests_sent, self.transport.rate_limited) if self.transport else (0, 0)
        rate = f" ({acted / elapsed * 60:.0f} calls/min)" if elapsed >= 1 else ""  # no rate from a blink
        log.info("done: %s in %.1fs%s; %s (%.2f per call moved or updated), %d answered 429", self.tally(), elapsed,
                 rate, plural(sent, "request"), sent / acted if acted else 0, limited)


def terminal_width(stream: Any) -> int:
    """Columns of the terminal `stream` writes to; 0 when it tells none (a live line then has no room)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 0


def silence(stream: Any) -> None:
    """Point a closed stdout at /dev/null, so that flushing it at exit prints no "Exception ignored" noise."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


# --- the HTTP transport: httpx inside the SDK, with our timeouts and retries ---------------

class Response:
    """What the SDK expects back from an HTTP client: status, reason, text data and headers."""

    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        self.reason = response.reason_phrase
        self.data = response.text
        self._headers = response.headers

    def getheaders(self) -> httpx.Headers:
        return self._headers

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self._headers.get(name, default)


class Transport:
    """Sends the SDK's requests through httpx, retrying what is safe to retry within one budget.

    - 429: the request was not processed (Genesys says so), so wait Retry-After and resend.
    - 500/502/503/504, answers that are not JSON, timeouts, dropped connections: resend reads
      and queries with backoff.
    - The transfer POST is different: after a 5xx, a timeout or an answer that cannot be
      decoded it may have been processed, so it raises OutcomeUnknown and the caller watches the
      conversation before deciding anything (Org.transfer).
    - 401 on an API call: fetch a new token once and resend (tokens expire mid-run).
    - A host that never answered (DNS failure, connection refused) is tried for a few seconds only.
    - Once a signal asked the run to stop, no request is sent (Stop.check).
    - Requests go to the org's origins only (its API host and login host): not where an SDK
      setting (its [gateway] configuration) would send them.
    The budget bounds the wall time during which the run waits to retry, however many workers
    wait at once; past it the run ends with exit 6.
    """

    def __init__(self, client: httpx.Client, *, retry_budget: float, stop: Stop, origins: frozenset[str],
                 sleep: Callable[[float], None] | None = None) -> None:
        import httpx

        self.client = client
        self.origins = origins
        self._network_errors = httpx.RequestError  # timeouts, dropped connections, undecodable answers
        self._never_sent = (httpx.ConnectError, httpx.ConnectTimeout)  # nothing reached Genesys
        self._timeouts = httpx.TimeoutException
        self._api_exception = load_sdk().ApiException
        self.retry_budget = retry_budget
        self.stop = stop
        self.sleep = sleep or stop.wait
        self.reauthenticate: Callable[[], str] | None = None
        self.requests_sent = 0
        self.rate_limited = 0
        self.retry_spent = 0.0
        self._charged_until = 0.0               # retry_spent covers waits up to this moment (wall time)
        self._worker = threading.local()
        self.operating = threading.local()      # .kind: the kind of the request Org.send is about to make
        self.reached = False                    # has the host answered anything yet?
        self._lock = threading.Lock()
        # What the last inin-ratelimit-* headers said, less what was sent since: None = unknown.
        self._pace = threading.Condition(self._lock)
        self._remaining: int | None = None
        self._reset_at = 0.0
        self._held_until = 0.0                  # the pause last announced on stderr
        self._in_flight = 0
        self._sent_seq = self._applied_seq = 0  # answers arrive out of order: apply only newer ones

    def request(self, options: Any) -> Response:
        parts = urllib.parse.urlsplit(options.url)
        path, host = CHANNEL_ID.sub(r"\1...", parts.path), parts.netloc  # as messages show it: no channel id
        if f"{parts.scheme}://{host}" not in self.origins:
            raise UsageError(f"refusing to send a request to {parts.scheme}://{host}: requests go only to the org "
                             f"({' and '.join(sorted(self.origins))})")
        is_token_request = path.endswith("/oauth/token")
        kind = self.operating.__dict__.pop("kind", "read")  # Org.send names it (OPERATIONS); the token is a read
        is_transfer, is_change = kind == "transfer", kind == "change"
        unclear: list[str] = []

        def wait_to_retry(delay: float, what: str, failed_attempt_time: float, **how: Any) -> None:
            try:
                self._wait_to_retry(delay, what, failed_attempt_time, **how)
            except Unavailable as exc:
                if unclear:
                    raise MaybeApplied(f"{exc}; an earlier attempt may have been applied ({unclear[0]})") from None
                raise

        headers = dict(options.headers)
        reauthenticated = False
        attempt = 0
        while True:
            attempt += 1
            try:
                self.stop.check(change=kind != "read")
            except Stopped as stopped:
                if unclear:
                    raise MaybeApplied(f"{options.method} {path}: {stopped.reason} after an answer was lost "
                                       f"({unclear[0]}); it may have been applied", stopped=stopped) from None
                raise
            started = time.monotonic()
            try:
                response = self._send(options, headers)
            except self._network_errors as exc:
                # Resending could double an action only for the transfer POST: every other request
                # reads. A connect error or connect timeout means nothing reached Genesys at all.
                never_sent = isinstance(exc, self._never_sent)
                described = describe_network_error(exc, isinstance(exc, self._timeouts))
                if is_transfer and not never_sent:
                    raise OutcomeUnknown(f"the transfer request to {host} got no clear answer ({type(exc).__name__}); "
                                         "it may or may not have been processed") from None
                if is_change and not never_sent:
                    unclear.append(type(exc).__name__)
                if never_sent and not self.reached:  # a wrong host or no network: say so soon
                    wait_to_retry(backoff(attempt), f"cannot reach {host}: {described}",
                                  time.monotonic() - started, budget=CONNECT_RETRY_BUDGET,
                                  fix="check GENESYS_API_HOST or GENESYS_REGION, and the network (DNS, "
                                      "proxy, firewall)", quiet=True)
                else:
                    wait_to_retry(backoff(attempt), f"{options.method} {path} on {host}: {described}",
                                  time.monotonic() - started)
                continue
            self.reached = True
            status = response.status_code
            log.debug("%s %s -> %d (%.0f ms)", options.method, path, status, (time.monotonic() - started) * 1000)
            if status == 401 and not is_token_request and not reauthenticated and self.reauthenticate:
                # A 401 is decided before the request is processed: resending cannot double it.
                reauthenticated = True
                headers["Authorization"] = f"Bearer {self.reauthenticate()}"
                continue
            if status == 429:  # Genesys: a 429 request was not processed, so it is safe to resend
                wait_to_retry(retry_after(response, attempt), f"{options.method} {path}: rate limited (429)",
                              time.monotonic() - started)
                continue
            if is_transfer and status >= 500:
                raise OutcomeUnknown(f"the transfer request was answered {status}; "
                                     "it may or may not have been processed")
            if status in TRANSIENT_STATUSES or status == 200 and not is_transfer and not is_json(response.text):
                # A 5xx, or a proxy's page or a cut-off body (Genesys answers 200 with JSON; 202s may be empty).
                if is_change:
                    unclear.append(f"HTTP {status}")
                wait_to_retry(backoff(attempt), f"{options.method} {path} on {host}: "
                              + (f"HTTP {status}" if status != 200 else f"answered {status} without valid JSON"),
                              time.monotonic() - started)
                continue
            result = Response(response)
            if not 200 <= status <= 205:
                raise self._api_exception(http_resp=result)
            return result

    def _send(self, options: Any, headers: dict[str, str]) -> httpx.Response:
        seq = self._wait_for_rate_limit()
        try:
            if options.post_params:
                response = self.client.request(options.method, options.url, headers=headers,
                                               params=options.query_params, data=dict(options.post_params))
            else:
                response = self.client.request(options.method, options.url, headers=headers,
                                               params=options.query_params, json=options.body)
        finally:
            with self._lock:
                self._in_flight -= 1
        self._note_rate_limit(response, seq)
        return response

    def _wait_for_rate_limit(self) -> int:
        """Hold a request while the last answer said the token's request budget is spent.

        The limit (300 a minute per token by default) is shared by every request of the run, so
        concurrent workers pause together until inin-ratelimit-reset instead of earning 429s.
        After the reset one request goes first, and its answer tells how many may follow.
        """
        with self._pace:
            while self._remaining is not None and self._remaining <= 0:
                pause = self._reset_at - time.monotonic()
                if pause <= 0:
                    self._remaining, self._reset_at = 1, time.monotonic() + 1.0
                    break
                if self._reset_at > self._held_until + 1.0:
                    self._held_until = self._reset_at
                    resume = dt.datetime.now() + dt.timedelta(seconds=pause)
                    log.info("rate limit reached (%s a minute): holding requests for %.1fs, until %s",
                             self.allowed, pause, resume.strftime("%H:%M:%S"))
                self._pace.wait(min(pause, 0.5))  # in slices: a signal must not wait out a long pause
                self.stop.check()
            if self._remaining is not None:
                self._remaining -= 1
            self._in_flight += 1
            self.requests_sent += 1
            self._sent_seq += 1
            return self._sent_seq

    def _note_rate_limit(self, response: httpx.Response, seq: int) -> None:
        with self._pace:
            if response.status_code == 429:
                self.rate_limited += 1
                self._remaining, self._reset_at = 0, time.monotonic() + retry_after(response, 1)
            else:
                try:
                    allowed = int(response.headers["inin-ratelimit-allowed"])
                    count = int(response.headers["inin-ratelimit-count"])
                    reset = float(response.headers["inin-ratelimit-reset"])
                except (KeyError, ValueError):
                    return
                if seq < self._applied_seq:
                    return  # an older request's view of the count: a newer one was already applied
                self._applied_seq = seq
                self.allowed = allowed
                self._remaining = allowed - count - self._in_flight
                self._reset_at = time.monotonic() + reset
            self._pace.notify_all()

    allowed: int | None = None  # requests a minute, from the last inin-ratelimit-allowed header

    def _wait_to_retry(self, delay: float, what: str, failed_attempt_time: float, *, budget: float | None = None,
                       fix: str = "try again later or raise GENESYS_RETRY_BUDGET", quiet: bool = False) -> None:
        """Sleep before a retry, or raise Unavailable when that would overrun the budget (`quiet`: retries at -v).

        The budget is wall time: the failed attempt and the wait ahead count once however many
        workers fail and wait over the same seconds (four 429s at once spend one Retry-After).
        """
        with self._lock:
            # This worker's clock: it cannot be earlier than the end of its own last wait (which an
            # injected sleep, in tests, does not really spend).
            now = max(time.monotonic(), getattr(self._worker, "resume", 0.0))
            begin = max(now - failed_attempt_time, self._charged_until)
            spent = self.retry_spent + max(0.0, now - begin)
            after = spent + max(0.0, now + delay - max(now, self._charged_until))
            if budget is not None and after > budget:
                raise Unavailable(f"{what}; gave up after {spent:.1f}s; {fix}")
            if after > self.retry_budget:
                raise Unavailable(f"{what}; gave up after {spent:.1f}s of retries (retry budget "
                                  f"{self.retry_budget:g}s; the next wait would have been {delay:.1f}s); {fix}")
            self.retry_spent, self._charged_until = after, max(self._charged_until, now + delay)
            self._worker.resume = now + delay
        log.log(logging.DEBUG if quiet else logging.INFO, "%s; retrying in %.1fs", what, delay)
        self.sleep(delay)
        with self._pace:  # this request waited out the pause: it may go first (and wake the others)
            self._reset_at = min(self._reset_at, time.monotonic())
            self._pace.notify_all()


    def refill_budget(self) -> None:
        """The org answered again: the next stretch of trouble gets the whole retry budget (a --follow window lasts
        hours; the budget bounds one stretch of failures, not all of them)."""
        with self._lock:
            self.retry_spent = 0.0


def is_json(text: str) -> bool:
    try:
        json.loads(text)
        return True
    except ValueError:
        return False


def backoff(attempt: int) -> float:
    """Exponential backoff with full jitter: up to 0.5, 1, 2, 4 ... 16 s."""
    return random.uniform(0.1, min(16.0, 0.5 * 2 ** (attempt - 1)))


def retry_after(response: httpx.Response, attempt: int) -> float:
    """Seconds to wait after a 429: Retry-After when given (Genesys always sends it), else backoff."""
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return backoff(attempt)


def describe_network_error(exc: Exception, timed_out: bool) -> str:
    if timed_out:
        return f"timed out ({type(exc).__name__})"
    return f"network error ({type(exc).__name__}: {exc})"


# --- the SDK and the API calls -------------------------------------------------------------

@functools.cache
def load_sdk() -> types.SimpleNamespace:
    """The parts of the Genesys Cloud SDK a run uses: ApiClient, ApiException, AbstractHttpClient, models.

    `import PureCloudPlatformClientV2` runs a package __init__ that imports all of its ~6,600
    model classes and every API class: 2-4 s and over 200 MiB. A run needs the ApiClient and a
    few dozen models, so unless the program has imported the SDK already (then it is used as it
    is), the package is registered lazily first (register_lazy_sdk) and each model is imported
    from its own file when the ApiClient first deserialises one.
    """
    if SDK_PACKAGE not in sys.modules:
        register_lazy_sdk()
    module = functools.partial(importlib.import_module, package=SDK_PACKAGE)
    # The SDK's logger writes request headers (the bearer token) when a user's
    # ~/.genesyscloudpython/config turns it on; this tool must never log a token.
    logging.getLogger(SDK_PACKAGE).disabled = True
    configure_sdk_once(module(".configuration"))
    return types.SimpleNamespace(ApiClient=module(".api_client").ApiClient, ApiException=module(".rest").ApiException,
                                 AbstractHttpClient=module(".abstract_http_client").AbstractHttpClient,
                                 models=module(".models"))


def configure_sdk_once(configuration: types.ModuleType) -> None:
    """Make the SDK's Configuration singleton read its config file without watching it (no observer thread).

    Its constructor starts a watchdog observer on ~/.genesyscloudpython, or, when that folder is
    missing, on the nearest folder above it that exists, recursively: a walk of the whole home
    folder at every start (1.7 s for 40,000 folders here; errors past the inotify limit). A run is
    too short to need a live reload. A program that made the singleton already keeps it as it is.
    """
    factory = configuration.Configuration  # the SDK's @singleton: the class and its one instance are in its closure
    cells = {name: cell.cell_contents for name, cell in zip(factory.__code__.co_freevars, factory.__closure__ or ())}
    cls = cells.get("cls")
    if cls is None or cls in cells.get("instances", {}):
        return
    read = cls._update_config_from_file

    def read_once(self: Any) -> None:
        read(self)
        self.live_reload_config = False  # the constructor starts the observer only while this is true

    cls._update_config_from_file = read_once
    try:
        configuration.Configuration()
    finally:
        cls._update_config_from_file = read


def register_lazy_sdk() -> None:
    """Put the SDK package and its `models` and `apis` subpackages in sys.modules as lazy modules.

    Their real __init__ files are only lines `from .x import Y` (and, at the top, a few plain
    imports and a Configuration() call that ApiClient makes anyway): each lazy module maps Y to
    its file from those lines, and imports it on first access (PEP 562's module __getattr__).
    Submodules (api_client, rest, models.conversation, ...) import normally from the same folders.
    """
    spec = importlib.util.find_spec(SDK_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        import_dependency(SDK_PACKAGE)
    root = list(spec.submodule_search_locations)[0]
    for name, folder in ((SDK_PACKAGE, root), (f"{SDK_PACKAGE}.models", os.path.join(root, "models")),
                         (f"{SDK_PACKAGE}.apis", os.path.join(root, "apis"))):
        init = os.path.join(folder, "__init__.py")
        with open(init, encoding="utf-8") as handle:
            exports = {attribute: submodule for submodule, attribute in SDK_EXPORT.findall(handle.read())}
        module = importlib.util.module_from_spec(
            importlib.util.spec_from_file_location(name, init, submodule_search_locations=[folder]))
        module.__getattr__ = functools.partial(lazy_attribute, module, exports)
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, module)


def lazy_attribute(module: types.ModuleType, exports: Mapping[str, str], attribute: str) -> Any:
    """A lazy SDK module's __getattr__: import the submodule that defines `attribute`, and keep it."""
    if attribute not in exports:
        raise AttributeError(f"module {module.__name__!r} has no attribute {attribute!r}")
    value = getattr(importlib.import_module(f"{module.__name__}.{exports[attribute]}"), attribute)
    setattr(module, attribute, value)
    return value


def make_org(settings: Settings, transport: httpx.BaseTransport | None = None,
             sleep: Callable[[float], None] | None = None, stop: Stop | None = None) -> Org:
    """The seam to the org: an SDK ApiClient whose HTTP goes through our httpx Transport (tests pass a MockTransport).

    Requests go to the org and nowhere else: the SDK's [gateway] configuration (from
    ~/.genesyscloudpython/config) is dropped, and httpx ignores proxy variables (trust_env=False).
    """
    httpx = import_dependency("httpx")
    sdk = load_sdk()

    class HttpClient(sdk.AbstractHttpClient):
        def __init__(self, inner: Transport) -> None:
            super().__init__()
            self.transport = inner

        def request(self, options: Any) -> Response:
            return self.transport.request(options)

    timeout = httpx.Timeout(settings.timeout, connect=min(CONNECT_TIMEOUT, settings.timeout))
    # Loading the CA bundle takes ~30 ms; plain http (allowed only to loopback) never uses it.
    verify = urllib.parse.urlsplit(settings.base_url).scheme == "https"
    proxies = sorted(name for name in os.environ if name.lower() in PROXY_VARIABLES and os.environ[name])
    if proxies:
        log.warning("ignoring %s: requests go straight to %s", ", ".join(proxies), settings.base_url)
    client = httpx.Client(transport=transport, timeout=timeout, verify=verify, trust_env=False,
                          headers={"User-Agent": f"transfer_call/{__version__}"})
    api_client = sdk.ApiClient(host=settings.base_url)
    gateway = api_client.gateway_configuration
    if gateway is not None and gateway.host:
        log.warning("ignoring the [gateway] section of ~/.genesyscloudpython/config (host %s): requests go only to "
                    "%s", gateway.host, settings.base_url)
    api_client.gateway_configuration = None
    origins = frozenset(origin(url) for url in (settings.base_url, api_client.get_conf_url("login", settings.base_url)))
    api_client.set_http_client(HttpClient(Transport(client, retry_budget=settings.retry_budget, stop=stop or Stop(),
                                                    origins=origins, sleep=sleep)))
    return Org(api_client, settings)


PROXY_VARIABLES = frozenset({"http_proxy", "https_proxy", "all_proxy"})


def origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def error_details(exc: Any) -> tuple[int, str | None, str, str | None]:
    """(status, Genesys error code, message, correlation id) from an ApiException's ErrorBody."""
    try:
        body = json.loads(exc.body or "{}")
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    message = body.get("message") or body.get("description") or exc.reason or "no message"
    headers = exc.headers or {}
    correlation = body.get("contextId") or headers.get("ININ-Correlation-Id")
    return exc.status, body.get("code") or body.get("error"), str(message), correlation


def api_error(exc: Any, action: str, missing: str | None = None) -> TransferCallError:
    """Turn an ApiException that no caller handled into our exception, naming the fix.

    `missing` is the message for a 404 when the thing looked up was named by the user (exit 2).
    """
    status, code, message, correlation = error_details(exc)
    ref = f" (correlation id {correlation})" if correlation else ""
    if status == 401:
        return AuthError(f"{action}: the access token was refused ({code}); check GENESYS_CLIENT_ID, "
                         f"GENESYS_CLIENT_SECRET and the region{ref}", code=code)
    if status == 403:
        permissions = sorted(set(re.findall(r"\b[a-z][a-zA-Z]*:[a-zA-Z]+:[a-zA-Z]+\b", message)))
        need = f"missing permission {', '.join(permissions)}" if permissions else message
        return AuthError(f"{action}: permission denied, {need}; add it to the OAuth client's role "
                         f"(and the queue's division){ref}", code=code)
    if status == 404 and missing:
        return NotFound(f"{missing}{ref}", code=code)
    if status == 404:
        return NoLiveCall(f"{action}: not found ({message}); it has ended, or the id is wrong{ref}", code=code)
    if status >= 500:
        return Unavailable(f"{action}: Genesys Cloud answered {status} {code}; try again later{ref}", code=code)
    return TransferRefused(f"{action}: Genesys Cloud answered {status} {code}: {message}{ref}", code=code)


class Org:
    """The one seam to the org: the SDK's ApiClient with our Transport (host, token, pacing, retries, counts).

    It sends every request (OPERATIONS), and owns the rules that must hold whatever mode runs:
    the transfer sent once however its answer is lost (transfer), and a lock per source so that
    two runs on one machine do not act on the same calls (lock).
    """

    def __init__(self, api_client: Any, settings: Settings) -> None:
        self.client = api_client
        self.transport: Transport = api_client.get_http_client().transport
        self.base_url = settings.base_url
        self.wait = settings.wait
        self._locks: list[Any] = []
        self._journal_days: set[dt.date] = set()
        # day -> (inode, bytes read, the last of them, the last entry of each leg): the journal is read on from there
        self._journal_read: dict[dt.date, tuple[int, int, bytes, dict[str, tuple[Any, ...]]]] = {}
        self._journal_lock = threading.Lock()

    def send(self, operation: str, *, path: Mapping[str, str] | None = None,
             query: Mapping[str, Any] | None = None, body: Any = None) -> Any:
        """Send one request of OPERATIONS through the SDK's ApiClient, as its API class would; raises ApiException."""
        method, resource_path, answer_model, kind = OPERATIONS[operation]
        self.transport.operating.kind = kind  # the transport's rules for resending go by it
        return self.client.call_api(resource_path, method, path_params=dict(path or {}),
                                    query_params=dict(query or {}),
                                    header_params={"Accept": "application/json", "Content-Type": "application/json"},
                                    body=body, post_params=[], files={}, response_type=answer_model,
                                    auth_settings=["PureCloud OAuth"])

    def api(self, action: str, operation: str, *, missing: str | None = None, **request: Any) -> Any:
        """send() one request, turning its ApiException into our exceptions (see api_error for `missing`)."""
        try:
            return self.send(operation, **request)
        except load_sdk().ApiException as exc:
            raise api_error(exc, action, missing) from None

    def conversation(self, conversation_id: str) -> Any:
        return self.api(f"reading conversation {conversation_id}", "get_conversation",
                        path={"conversationId": conversation_id})

    def authenticate(self, client_id: str, client_secret: str) -> None:
        """Get a client-credentials token, and arrange for a new one when a 401 comes mid-run."""
        def fetch_token() -> str:
            try:
                self.client.get_client_credentials_token(client_id, client_secret)
            except load_sdk().ApiException as exc:
                status, code, _, _ = error_details(exc)
                # Reworded, never echoed: the token endpoint's answer is not ours to print.
                if status in (400, 401, 403):
                    raise AuthError(f"authentication failed (HTTP {status}{' ' + code if code else ''}); check "
                                    "GENESYS_CLIENT_ID and GENESYS_CLIENT_SECRET, and that the OAuth client uses the "
                                    "Client Credentials grant in this region", code=code) from None
                raise Unavailable(f"the token endpoint answered HTTP {status}; try again later", code=code) from None
            except (ValueError, LookupError, TypeError):  # the SDK parses the answer as [answer][0]["access_token"]
                self.client.access_token = None
            token = self.client.access_token
            if not isinstance(token, str) or not token:
                raise Unavailable("the token endpoint answered without an access token; check GENESYS_API_HOST or "
                                  "GENESYS_REGION (is it a Genesys Cloud org?), or try again later")
            return token

        fetch_token()
        self.transport.reauthenticate = fetch_token

    @property
    def requests_sent(self) -> int:
        return self.transport.requests_sent

    def close(self) -> None:
        """Release the locks this run holds and the connections it keeps (the process's end does both, too)."""
        for handle in self._locks:
            handle.close()
        self._locks.clear()
        self.transport.client.close()

    def lock(self, what: str, shared: str | None = None) -> None:
        """Hold, until the process ends, this machine's lock on `what` in this org; raise Busy when another run has it.

        A file lock (flock) in the user's state folder (state_folder): the kernel releases it
        however the process ends, SIGKILL included. It does not reach other machines or users.
        `shared` (what the run does there) takes it shared: runs that share it may overlap, a run
        that wants it alone may not (a run following calls into a queue, and one taking calls from it).
        """
        try:
            import fcntl
        except ImportError:  # not on this platform (Windows): go on unlocked
            log.debug("no file locks on this platform: overlapping runs are not prevented")
            return
        handle = self._state_file(what, "a+", ".lock")
        for attempt in range(5 if shared else 1):  # a shared one: another run's probe (Org.claim) holds it an instant
            try:
                fcntl.flock(handle, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                break
            except OSError:
                if attempt == (4 if shared else 0):
                    holder = " and ".join(self._holders(handle)) or "another run"
                    handle.close()
                    raise Busy(f"{holder} is acting on {what} in this org; wait for it to finish (or stop it), then "
                               "run again") from None
                time.sleep(0.02)
        if not shared:  # alone: the file names this run only; shared holders each add a line
            handle.seek(0)
            handle.truncate()
        handle.write(f"transfer_call run {os.getpid()} (started "
                     f"{dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}{', ' + shared if shared else ''})\n")
        handle.flush()
        self._locks.append(handle)

    @staticmethod
    def _holders(handle: Any) -> list[str]:
        """Who holds a lock, as its file says: the runs it names that are still alive (a holder writes right after it
        takes the lock, so an empty file is read again for a moment); [] when it names none."""
        for _ in range(10):
            handle.seek(0)
            lines = [line for line in handle.read().splitlines() if line.strip()]
            alive = []
            for line in lines:
                pid = re.match(r"transfer_call run (\d+)", line)
                try:
                    if pid:
                        os.kill(int(pid.group(1)), 0)
                    alive.append(line)
                except PermissionError:
                    alive.append(line)
                except (OSError, ValueError):
                    pass
            if alive:
                return alive
            time.sleep(0.02)
        return []

    def claim(self, takes: set[str], pours: set[str], *, following: bool = False,
              one_call: bool = False) -> dict[str, str]:
        """Hold this run's shared locks on the queues it takes calls from and pours calls into, then name the queues
        where another run on this machine works the other way: queue id -> "<that run> is moving calls into" (or
        "is taking calls out of"). Calls moved there would be moved back, or moved on, by the other run.

        The locks are taken before either side looks, so of two runs started together at least one sees the other.
        A queue this run both takes from and pours into (an undo of moves both ways) is not looked at. A run on
        `one_call` does not mind another one-call run (neither picks up more calls). A run that changes calls in
        place takes none out and pours none in: it claims nothing.
        """
        what = "one call" if one_call else "calls"
        for queue_id in sorted(takes):
            self.lock(f"calls taken from queue {queue_id}", shared=f"taking {what} from it")
        for queue_id in sorted(pours):
            self.lock(f"calls poured into queue {queue_id}",
                      shared="following calls into it" if following else f"moving {what} into it")
        busy = {}
        for family, queues, doing in (("calls poured into", takes - pours, "is moving calls into"),
                                      ("calls taken from", pours - takes, "is taking calls out of")):
            for queue_id in sorted(queues):
                holder = self._holder(f"{family} queue {queue_id}", ignore="one call" if one_call else None)
                if holder:
                    busy[queue_id] = f"{holder} {doing}"
        return busy

    def _holder(self, what: str, ignore: str | None = None) -> str | None:
        """Who holds a lock on `what`, shared or alone (None: nobody, or only runs whose line says `ignore`), found by
        taking it alone for an instant."""
        try:
            import fcntl
        except ImportError:
            return None
        with self._state_file(what, "a+", ".lock") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holders = self._holders(handle)
                minded = [line for line in holders if not (ignore and ignore in line)]
                return " and ".join(minded) if minded else None if holders else "another run"
            fcntl.flock(handle, fcntl.LOCK_UN)
            return None

    def remember_transfer(self, call: Call, state: str = "sent") -> None:
        """Note in this machine's journal that the call's leg is being transferred ("sent"), or was not ("refused",
        "unsent").

        Written before the request goes out: an answer lost on the way back leaves the journal
        saying so (see journal), and a transfer whose entry cannot be written is not sent (StateError).
        A day's journal is a file of its own; those of days past go.
        """
        if call.scheduled:  # moved on its own leg, which stays live: the journal's rule does not apply
            return
        day = dt.datetime.now(dt.timezone.utc).date()
        if not self._journal_days:
            with contextlib.suppress(OSError, UsageError):  # another run may be removing the same files
                self._forget_old_journals()
        try:
            with self._state_file(f"transfers {day}", "a", ".transfers") as journal:
                journal.write(f"{call.journal_key} {time.time():.0f} {state} {boot_id()} {boot_clock():.0f}\n")
            self._journal_days.add(day)
        except (OSError, UsageError) as exc:
            why = getattr(exc, "strerror", None) or str(exc)
            if state == "sent":
                raise StateError(f"cannot write this machine's journal of transfers ({why}), without which a rerun "
                                 "could move the call twice: nothing was sent; check HOME and ~/.cache/transfer_call"
                                 ) from None
            log.warning("cannot note in the journal of transfers that conversation %s was %s (%s): a rerun holds its "
                        "leg back for %g minutes", call.conversation_id, state, why, JOURNAL_WINDOW / 60)

    def journal(self) -> dict[str, float]:
        """Call.journal_key -> when (wall time) a run on this machine sent a transfer of that leg, within JOURNAL_WINDOW.

        A transfer replaces the leg it moves, so a leg still live after a transfer of it was sent
        is a transfer not applied yet, or one whose answer was lost: a second one could move the
        call twice. A transfer refused outright does not count. The window is measured on the
        clock since boot where the entry was written since this boot: a step of the wall clock
        (NTP, a manual change) neither ends nor stretches it.
        """
        today, last = dt.datetime.now(dt.timezone.utc).date(), {}
        for day in (today - dt.timedelta(days=1), today, today + dt.timedelta(days=1)):  # the wall clock may step
            last.update(self._journal_of(day))
        held, since_boot, now, this_boot = {}, boot_clock(), time.time(), boot_id()
        for key, (moment, state, *boot) in last.items():
            age = since_boot - float(boot[1]) if boot and boot[0] == this_boot != "-" else now - moment
            if state == "sent" and age < JOURNAL_WINDOW:
                held[key] = moment
        return held

    def _journal_of(self, day: dt.date) -> dict[str, tuple[Any, ...]]:
        """The last entry of each leg in a day's journal; what was read before is kept, and only what was added
        since is read (a run reads it right before each transfer)."""
        with self._journal_lock:
            try:
                with self._state_file(f"transfers {day}", "r", ".transfers") as journal:
                    stat = os.fstat(journal.fileno())
                    size, inode = stat.st_size, stat.st_ino
                    known, offset, tail, entries = self._journal_read.get(day, (None, 0, b"", {}))
                    # The same file grown, or another (removed and made again: an inode is soon reused)?
                    if known != inode or offset > size or os.pread(journal.fileno(), len(tail),
                                                                   offset - len(tail)) != tail:
                        offset, tail, entries = 0, b"", {}
                    data = os.pread(journal.fileno(), size - offset, offset)
            except (OSError, UsageError):
                self._journal_read.pop(day, None)
                return {}
            complete = data[:data.rfind(b"\n") + 1]  # a line being written is read next time
            entries = dict(entries)
            for line in complete.decode("utf-8", "replace").splitlines():
                fields = line.split(" ")  # conversation, leg, its start, when sent, state [, boot id, clock since boot]
                with contextlib.suppress(ValueError):
                    if len(fields) in (5, 7):  # the last line of a leg counts
                        entries[" ".join(fields[:3])] = (float(fields[3]), fields[4], *fields[5:])
            self._journal_read[day] = (inode, offset + len(complete), (tail + complete)[-64:], entries)
            return entries

    def _forget_old_journals(self) -> None:
        folder = self._state_folder()
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            if name.endswith(".transfers") and time.time() - os.lstat(path).st_mtime > 2 * 86400:
                os.remove(path)

    @staticmethod
    def _state_folder() -> str:
        """The user's state folder, ~/.cache/transfer_call (0700, the user's own, not a symlink)."""
        folder = os.path.join(os.path.expanduser("~"), ".cache", "transfer_call")
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
        except OSError as exc:  # a dangling ~/.cache link, a read-only HOME
            raise StateError.of(exc) from None
        owner = getattr(os, "getuid", None)  # none on Windows
        if os.path.islink(folder) or owner is not None and os.lstat(folder).st_uid != owner():
            raise StateError(f"{folder} is not a folder of this user's; remove it")
        os.chmod(folder, 0o700)
        return folder

    def _state_file(self, what: str, mode: str, suffix: str) -> Any:
        """This org's file for `what` in the state folder, opened without following a symlink."""
        import hashlib

        name = hashlib.sha256(f"{self.base_url} {what}".encode()).hexdigest()[:24] + suffix
        try:
            folder = self._state_folder()
            flags = {"a+": os.O_RDWR | os.O_CREAT | os.O_APPEND, "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                     "r": os.O_RDONLY}[mode] | getattr(os, "O_NOFOLLOW", 0)
            return os.fdopen(os.open(os.path.join(folder, name), flags, 0o600), mode, encoding="utf-8")
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise StateError.of(exc) from None


@functools.cache
def boot_id() -> str:
    """This boot's id (Linux), "-" where there is none: the clock since boot counts within one boot only."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip() or "-"
    except OSError:
        return "-"


def boot_clock() -> float:
    """Seconds since boot, suspend included, the same in every process and never stepped like the wall clock."""
    return time.clock_gettime(time.CLOCK_BOOTTIME) if hasattr(time, "CLOCK_BOOTTIME") else time.monotonic()


def authenticate(org: Org, settings: Settings) -> None:
    """Get a client-credentials token for the settings' OAuth client."""
    org.authenticate(settings.client_id, settings.client_secret)


def find_user_by_email(org: Org, email: str) -> str:
    """The id of the one user whose email is this one, ignoring case."""
    body = {"query": [{"type": "EXACT", "fields": ["email"], "value": email}]}  # UserSearchRequest
    found = org.api(f"looking up user {email}", "post_users_search", body=body)
    ids = [user.id for user in found.results or [] if (user.email or "").lower() == email.lower()]
    if not ids:
        raise NotFound(f"no user has the email {email}; check the address (or the divisions granted to the "
                       "OAuth client's role), or use --user-id")
    return ids[0]


def queue_to_use(org: Org, queue_id: str | None, queue_name: str | None,
                 check: bool) -> tuple[str, str | None]:
    """(id, name) of a queue: looked up when named or when `check`; an id alone is taken as given (no name).

    Skipping the lookup saves a request, and a wrong id still ends the run clearly: the transfer
    answers conversations.error.queue.not.found before anything moves.
    """
    if queue_id and not check:
        return queue_id, None
    return resolve_queue(org, queue_id, queue_name)


def resolve_queue(org: Org, queue_id: str | None, queue_name: str | None) -> tuple[str, str]:
    """(id, name) of a queue, which must exist, be visible, and (by name, ignoring case) be unique."""
    queue = resolve_named(org, "queue", queue_id or queue_name)
    return queue.id, queue.name


def resolve_named(org: Org, kind: str, value: str) -> Any:
    """The one queue, skill or language (`kind`, see NAMED) with this id, or with this name ignoring case.

    Genesys lists the names that match the value (queues: exactly, with * wildcards; skills: that
    start with it; languages: unverified), and may list inactive and deleted skills and languages,
    so the comparison and the state check are ours.
    """
    read_one, id_parameter, listing, active_only, _ = NAMED[kind]
    active = "active " if active_only else ""
    visible = "visible to this OAuth client; check the {}, and the divisions granted to the client's role"
    if is_uuid(value):
        entity = org.api(f"reading {kind} {value}", read_one, path={id_parameter: value},
                     missing=f"{kind} {value} does not exist or is not {visible.format('id')}")
        if active_only and entity.state != "active":
            raise NotFound(f"{kind} {entity.name} ({value}) is {entity.state}; give an active one")
        return entity
    named, page, pages = [], 1, 1
    while page <= pages:
        found = org.api(f"looking up {kind} {value!r}", listing,
                    query={"name": value, "pageSize": PAGE_SIZE, "pageNumber": page})
        named += [e for e in found.entities or [] if (e.name or "").lower() == value.lower()]
        page, pages = page + 1, found.page_count or 1
    matches = [e for e in named if not active_only or e.state == "active"]
    if named and not matches:
        raise NotFound(f"{kind} {named[0].name!r} is {named[0].state}; give an active one")
    if not matches:
        raise NotFound(f"no {active}{kind} named {value!r} is {visible.format('name (compared ignoring case)')}; "
                       "or give its id")
    if len(matches) > 1:
        listed = ", ".join(f"{e.name} ({e.id})" for e in matches)
        raise UsageError(f"{len(matches)} {active}{kind}s are named {value!r}: {listed}; give the id instead")
    return matches[0]


def live_calls(org: Org, action: str, query: Callable[[], dict[str, Any]], keep: Callable[[Any], Any],
               not_yet: str) -> list[tuple[Any, Any]]:
    """(conversation, what `keep` found in it) for each live conversation a details query lists and keep accepts.

    Analytics lists candidates (it can lag, or still list ended calls); the live conversation
    decides. While it shows none, analytics is asked again, ANALYTICS_RETRIES times.
    """
    for attempt in range(ANALYTICS_RETRIES + 1):
        found = org.api(action, "post_analytics_conversations_details_query", body=query())
        live = []
        for candidate in found.conversations or []:
            if candidate.conversation_end is not None:
                continue
            try:
                conversation = org.conversation(candidate.conversation_id)
            except NoLiveCall:
                continue  # analytics knew it, the conversation service no longer does
            kept = keep(conversation)
            if kept is not None:
                live.append((conversation, kept))
        if live or attempt == ANALYTICS_RETRIES:
            return live
        log.info("%s yet; asking analytics again in %.1fs", not_yet, ANALYTICS_RETRY_DELAY)
        time.sleep(ANALYTICS_RETRY_DELAY)
    return []


def find_agent_call(org: Org, user_id: str) -> tuple[Any, Any]:
    """(conversation, agent participant) of the user's connected voice call.

    With several live calls the connected, not held, most recent one wins.
    """
    live = live_calls(org, "querying analytics for the agent's calls",
                      lambda: details_query({"userId": user_id}, dt.datetime.now(dt.timezone.utc), order="desc"),
                      lambda conversation: pick_agent_participant(conversation, user_id),
                      f"no connected call found for user {user_id}")
    if not live:
        raise NoLiveCall(f"user {user_id} has no connected voice call; check the agent, or use --conversation-id")
    live.sort(key=lambda pair: leg_rank(pair[1]), reverse=True)
    (chosen, *others) = live
    if others:
        log.warning("user %s has %s, not moved: %s", user_id, plural(len(others), "other live call"),
                    ", ".join(c.id for c, _ in others))
    return chosen


def caller_forms(e164: str) -> tuple[str, ...]:
    """How the details query asks for a caller's calls: Genesys stores tel:+E164 on customer, ivr and acd
    sessions; which forms its ani `matches` accepts is unverified, so every likely one is asked for."""
    return f"tel:{e164}", e164, e164[1:]


def find_caller_call(org: Org, caller: str) -> Any:
    """The one live conversation whose customer called from `caller` (E.164).

    Analytics lists candidates by the segment dimension ani, asked in every form of caller_forms
    (which ones `matches` accepts is unverified); the live conversation's customer leg decides.
    Two live calls from the number are refused, listed: never guess between two customers' calls.
    """
    def query() -> dict[str, Any]:
        body = details_query({}, dt.datetime.now(dt.timezone.utc), order="desc")
        body["segmentFilters"].append({"type": "or", "predicates": [
            {"type": "dimension", "dimension": "ani", "operator": "matches", "value": form}
            for form in caller_forms(caller)]})
        return body

    live = [conversation for conversation, _ in live_calls(
        org, f"querying analytics for the calls from {caller}", query,
        lambda conversation: (not conversation_ended(conversation) and caller_of(conversation) == caller) or None,
        f"no live call from {caller} found")]
    if len(live) > 1:
        listed = "; ".join(f"{c.id} ({where_is(c)}, since {iso(c.start_time) if c.start_time else '?'})"
                           for c in live)
        raise UsageError(f"{len(live)} live calls are from {caller}: {listed}; name the one to act on with "
                         "--conversation-id")
    if not live:
        raise NoLiveCall(f"no live voice call from {caller}; check the number (a withheld one cannot be found), or "
                         "use --conversation-id")
    return live[0]


def find_call(org: Org, settings: Settings, plan: Plan) -> Call:
    """The one call the settings name (by agent, conversation or caller), as the plan acts on it."""
    if settings.user_id or settings.user_email:
        user_id = settings.user_id or find_user_by_email(org, settings.user_email)
        return call_in(*find_agent_call(org, user_id), plan)
    if settings.caller:
        return call_in(find_caller_call(org, settings.caller), None, plan)
    return call_in(org.conversation(settings.conversation_id), None, plan)


def transfer(org: Org, call: Call) -> None:
    """Send the call's blind transfer, never twice for one move however its answer is lost; the outcome goes on the call.

    A 202 means moved. A 5xx, a timeout, a dropped connection or an answer that cannot be read
    leaves the outcome unknown: sending again blindly could move the call twice (and take it
    from the agent who answered it in the target queue), so the call is watched for up to
    --wait (at least SETTLE_TIME) first. It moved if it shows in the target queue; it did not if
    an agent answered it or it ended; it is sent once more only if the same leg still waits and
    the conversation shows no transfer pending (recentTransfers: whether queue transfers are
    listed there is unverified). Otherwise its outcome stays unknown: it is not resent.
    """
    action = f"transferring conversation {call.conversation_id}"
    if call.scheduled:  # a callback not offered yet: not replaced, its queue is changed
        request = {"body": scheduled_callback_body(call)}
    else:
        request = {"path": {"conversationId": call.conversation_id, "participantId": call.participant_id},
                   "body": transfer_body(call.queue_id)}
    if held(call, org.journal()):  # read again right before sending: another run may have sent one since
        return
    for attempt in (1, 2):
        try:
            org.remember_transfer(call)  # first: whatever becomes of the answer, a later run knows it was sent
            call.sent = True
            org.send("patch_conversations_callbacks" if call.scheduled else TRANSFERS[call.media], **request)
            call.moved = "yes"
            return
        except Stopped:  # raised before the request went out: it was not sent after all
            if attempt == 1:  # (a second one follows a first whose answer was lost: that one stands)
                org.remember_transfer(call, "unsent")
                call.sent = False
            raise
        except OutcomeUnknown as exc:
            unclear = f"{action}: {exc}"
        except load_sdk().ApiException as exc:
            if attempt == 1 and call.scheduled and 400 <= exc.status < 500 and offered_meanwhile(org, call):
                org.remember_transfer(call, "refused")
                return transfer(org, call)  # offered meanwhile: it waits as a routed callback now, replaced
            if attempt == 1 or error_details(exc)[1] != "conversations.error.transfer.not.connected":
                if attempt == 1:
                    org.remember_transfer(call, "refused")  # refused outright: a rerun may send it
                    call.moved = "no"
                raise transfer_error(exc, action, call.queue_id) from None
            unclear = f"{action}: the second request found the leg gone"  # did the first one go through?
        log.warning("%s; watching the call before deciding anything", unclear)
        call.moved = "unknown"
        try:
            seen, _ = watch(org, call, max(org.wait, SETTLE_TIME), lambda seen: seen not in ("waiting", "pending"))
        except Stopped as stopped:
            call.fail(f"{unclear}; {stopped.reason} before it was seen where the call went: check the call")
            call.cut_short = True
            return
        except TransferCallError as error:
            call.fail(f"{unclear}; then reading the call failed ({error}): check the call", error)
            return
        if seen == "landed":
            call.moved, call.verified = "yes", True
            return
        if seen == "landed, then ended":
            call.moved = "yes"
            call.skip(f"the call reached queue {call.queue_name or call.queue_id}, then ended")
            return
        if seen in ("answered", "ended"):
            call.moved = "no"
            what = "answered before the transfer (by an agent where it waited)" if seen == "answered" else "ended"
            call.skip(f"the call was {what}; nothing moved", NoLiveCall(f"{action}: the call was {what}"))
            return
        if seen != "waiting" or attempt == 2:  # after two unclear answers, a third could be a second move
            found = {"pending": "shows a transfer still pending", "waiting": "still waits where it was"}
            call.fail(f"{unclear}; after {max(org.wait, SETTLE_TIME):g}s the call {found.get(seen, 'is ' + seen)}: "
                      "not sent again, check the call")
            return
        log.warning("%s: participant %s still waits and no transfer is pending; sending the transfer again", action,
                    call.participant_id)


def offered_meanwhile(org: Org, call: Call) -> bool:
    """A scheduled callback whose PATCH was refused: True (and the call now names its routed leg) if it was offered
    meanwhile and waits in the queue as a routed callback; False when it is still scheduled, answered or gone."""
    try:
        leg = waiting_leg(org.conversation(call.conversation_id))
    except TransferCallError:
        return False
    if leg is None or is_scheduled(leg) or leg.queue_id != call.from_queue_id:
        return False
    call.scheduled, call.participant_id = False, leg.id
    return True


def watch(org: Org, call: Call, seconds: float, until: Callable[[str], bool]) -> tuple[str, Any]:
    """The one poll of where a moved call is: (what transfer_effect shows, the conversation) once `until` holds for
    it, or after `seconds`; read soon (most transfers land within a moment), then every POLL_INTERVAL."""
    deadline, pause = time.monotonic() + seconds, POLL_INTERVAL / 5
    while True:
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))  # a signal: the next read says so
        pause = min(pause * 2, POLL_INTERVAL)
        conversation = org.conversation(call.conversation_id)
        seen = transfer_effect(conversation, call)
        if until(seen) or time.monotonic() >= deadline:
            return seen, conversation


ENDED = frozenset({"landed, then ended", "ended"})  # what transfer_effect shows of a call that ended


def transfer_effect(conversation: Any, call: Call) -> str:
    """What a conversation shows of a transfer of `call`: "landed", "landed, then ended", "ended", "pending" (the
    same leg still waits and a transfer is listed pending), "waiting" (the same leg, nothing pending), "answered"
    (an agent took the call where it waited), or who is on the call (describe_participants)."""
    if transfer_landed(conversation, call):
        return "landed"
    participants = conversation.participants or []
    if conversation_ended(conversation):  # a leg in the target queue, even ended, says the transfer was applied
        return "landed, then ended" if any(p.id != call.participant_id and p.id not in call.known_legs
                                           and p.queue_id == call.queue_id for p in participants) else "ended"
    if any(p.id == call.participant_id and is_live(p) for p in participants):
        return "pending" if transfer_pending(conversation) else "waiting"
    if any(p.purpose == "agent" and is_connected(p) and p.id not in call.known_legs for p in participants):
        return "answered"
    return describe_participants(conversation)


def transfer_error(exc: Any, action: str, queue_id: str) -> TransferCallError:
    """Our exception for a refused transfer POST, by the Genesys error code."""
    status, code, message, correlation = error_details(exc)
    ref = f" (correlation id {correlation})" if correlation else ""
    if code == "conversations.error.transfer.not.connected":
        return NoLiveCall(f"{action}: the call was answered or ended before the transfer; nothing moved{ref}",
                          code=code)
    if code == "conversations.error.queue.not.found":
        return NotFound(f"{action}: queue {queue_id} does not exist or is not visible to this OAuth "
                        f"client; check --queue-id and the role's divisions{ref}", code=code)
    if status == 404:
        return NoLiveCall(f"{action}: the conversation or participant is gone; the call ended{ref}", code=code)
    return api_error(exc, action)


def wait_for_transfer(org: Org, call: Call, wait: float) -> None:
    """Re-read the moved call until it is in the target queue (verified), or its reason says why not after `wait` s.

    The transfer API answers 202 and works asynchronously, so the answer alone proves nothing.
    """
    seen, conversation = watch(org, call, wait, lambda seen: seen == "landed" or seen in ENDED)
    if seen == "landed":
        call.verified = True
    elif seen in ENDED:
        call.reason = f"the call ended before it was seen in queue {call.queue_name or call.queue_id}"
        call.skipped = True  # nothing more can be done for it
    else:
        call.fail(f"accepted, but not seen in queue {call.queue_name or call.queue_id} within {wait:g}s; last "
                  f"seen: {describe_participants(conversation)}; check the call, or raise --wait")


def list_waiting_calls(org: Org, queue_id: str, media: tuple[str, ...] = ("voice",)) -> list[WaitingCall]:
    """Every call (voice, or of these media) analytics shows waiting in queue_id, oldest first, across all pages."""
    calls: dict[str, WaitingCall] = {}
    page = 1
    while True:
        query = details_query({"queueId": queue_id}, dt.datetime.now(dt.timezone.utc), order="asc",
                              page=page, page_size=PAGE_SIZE, media=media)
        found = org.api(f"listing the calls waiting in queue {queue_id}",
                     "post_analytics_conversations_details_query", body=query)
        conversations = found.conversations or []
        for waiting in waiting_calls(conversations, queue_id, media):
            calls.setdefault(waiting.conversation_id, waiting)  # pages can shift while calls come and go
        if len(conversations) < PAGE_SIZE or page * PAGE_SIZE >= (found.total_hits or 0):
            return list(calls.values())
        page += 1


def seen_in_queue(org: Org, calls: list[Call]) -> list[Call]:
    """The moved calls that analytics already shows waiting in their target queue on a new leg.

    One GET /api/v2/analytics/conversations/details?id=... per PAGE_SIZE calls reads exactly
    those conversations, however many other calls wait in the target queue. Analytics lags the
    live state by seconds, so a call missing here may still have landed.
    """
    seen = []
    for start in range(0, len(calls), PAGE_SIZE):
        batch = {c.conversation_id: c for c in calls[start:start + PAGE_SIZE]}
        found = org.api(f"checking {plural(len(batch), 'moved call')}", "get_analytics_conversations_details",
                     query={"id": list(batch)})
        for conversation in found.conversations or []:
            moved = batch.get(conversation.conversation_id)
            if moved and arrived(conversation, moved):
                seen.append(moved)
    return seen


def arrived(view: Any, call: Call) -> bool:
    """Analytics shows the moved call in its target queue on a new leg: waiting there, or answered there.

    A scheduled callback keeps its leg: that leg's open segment then names the target queue.
    """
    for participant in view.participants or []:
        same = participant.participant_id == call.participant_id
        if same and not call.scheduled or participant.participant_id in call.known_legs and not same:
            continue
        segments = [segment for session in participant.sessions or [] if session.media_type == call.media
                    for segment in session.segments or [] if segment.queue_id == call.queue_id]
        if participant.purpose == "agent" and segments or participant.purpose == "acd" and any(
                segment.segment_end is None for segment in segments):
            return True
    return False


# --- the pipeline: select the calls, plan, send paced, verify, report --------------------------

HALTING = (AuthError, Unavailable, NotFound, StateError)  # errors every further call would hit: start no new one


def make_plan(org: Org, settings: Settings) -> Plan:
    """Resolve every name the command gives (target queue, skills, language) once, before any change.

    Every name that does not resolve is reported in one message, as settings are (exit 2). A bulk
    run looks its target queue up even by id: one request, before any of its many transfers.
    """
    problems: list[str] = []

    def resolved(lookup: Callable[[], Any]) -> Any:
        try:
            return lookup()
        except UsageError as exc:  # NotFound, and names that match more than one
            problems.append(str(exc))
            return None

    target: tuple[str | None, str | None] = (None, None)
    if settings.queue_id or settings.queue_name:
        target = resolved(lambda: queue_to_use(org, settings.queue_id, settings.queue_name,
                                               settings.read_only or settings.check or not settings.single)) or target
    routing: dict[str, Any] = {}
    for field in ROUTING:
        given = settings.routing.get(field.key)
        if given is None or not field.named:
            routing.update({} if given is None else {field.key: list(given) if field.many else given})
            continue
        ids = [getattr(resolved(functools.partial(resolve_named, org, field.named, name)), "id", None)
               for name in (given if field.many else [given] if given else [])]
        routing[field.key] = list(dict.fromkeys(ids)) if field.many else ids[0] if ids else ""  # "" removes it
    if problems:
        raise UsageError("; ".join(problems))
    return Plan(*target, in_place=settings.in_place and not settings.list_calls, routing=routing, attributes=dict(settings.attributes),
                verify=settings.wait > 0, undo=settings.undo)


def hold_back(call: Call, why: str, then: str = ", or run again in a moment") -> None:
    """Send nothing for a call an earlier transfer of which may not be applied yet: a second could move it twice."""
    sent = "no transfer was sent (its participant data was written)" if call.data_written else "nothing was sent"
    call.fail(f"{why}; {sent}: look at the call{then}",
              Unavailable(f"conversation {call.conversation_id}: a transfer is pending"))
    call.held_back = True


def select_calls(org: Org, settings: Settings, plan: Plan, source: tuple[str, str | None] | None = None) -> list[Call]:
    """The calls to act on, from the selector the settings name: one call, a queue, a list, or an earlier run's moves.

    Calls that need nothing (already where asked with nothing else to set, with an agent already,
    ended, done by the earlier run whose lines are read, or, for an undo, moved on since) come
    back decided, as `skipped` with the reason. Unless it is a dry run, the run holds this
    machine's lock on the calls it may act on from here on (Org.lock).
    """
    if source is not None:
        calls = list_source_queue(org, settings, plan, source)
    else:
        if settings.listed and not settings.read_only:
            org.lock("the calls listed in files (--conversations-file, --undo)")
        calls = list_moves_to_undo(org, settings, plan) if settings.undo else \
            list_named_calls(org, settings, plan) if settings.listed else [find_call(org, settings, plan)]
        if not settings.listed and not settings.read_only:
            org.lock(f"conversation {calls[0].conversation_id}")
    journal = org.journal() if not settings.read_only else {}
    moving = [call for call in calls if source is None and not settings.read_only and not call.decided and call.move
              and call.from_queue_id and call.queue_id and call.from_queue_id != call.queue_id]
    busy = org.claim({c.from_queue_id for c in moving}, {c.queue_id for c in moving},
                     one_call=settings.single) if moving else {}
    for call in moving:
        why = f"{busy[call.from_queue_id]} queue {call.from_queue_id}, where this call waits: it would be moved back" \
            if call.from_queue_id in busy else f"{busy[call.queue_id]} queue {call.queue_name or call.queue_id}, " \
            "where this call would go: it would be moved on" if call.queue_id in busy else None
        if why:
            error = Busy(f"{why}; stop that run, or wait for it to finish")
            call.fail(str(error), error)
    for call in calls:
        if not call.decided and call.move and call.purpose == "acd" and call.from_queue_id == call.queue_id:
            where = call.queue_name or call.queue_id
            if plan.changes:  # a rerun of a move with routing: the move is done, the rest is set again in place
                call.move, call.reason = False, f"already waiting in queue {where}"
            else:
                call.skip(f"already waiting in queue {where}; nothing to do")
        elif not call.decided:
            held(call, journal)
    chosen = {id(call) for call in [call for call in calls if not call.decided][:settings.limit]}
    return [call for call in calls if call.decided or id(call) in chosen]


def held(call: Call, journal: Mapping[str, float]) -> bool:
    """The one send guard: hold the call back (True) while an earlier transfer of its leg may still apply, as the
    call was read (call.hold: a transfer the conversation lists pending, an earlier run's line whose leg is still
    there) or as this machine's journal says (a transfer of this very leg sent within JOURNAL_WINDOW). A second
    transfer could move the call twice. Called when the calls are picked, and again right before each transfer."""
    if not call.move or call.held_back:
        return call.held_back
    if call.hold:
        hold_back(call, call.hold)
    elif not call.scheduled and call.journal_key in journal:
        moment = dt.datetime.fromtimestamp(journal[call.journal_key], dt.timezone.utc).strftime("%H:%M:%SZ")
        hold_back(call, f"a run on this machine sent a transfer of this very leg at {moment}, and the leg is still "
                  "there: that transfer is not applied yet, or its answer was lost",
                  then=f" (this machine holds it back for {JOURNAL_WINDOW / 60:g} minutes)")
    return call.held_back


def customer_leg(conversation: Any) -> str | None:
    """The id of the call's customer participant (external, for an outbound call): where participant data goes."""
    legs = [p for p in conversation.participants or [] if p.purpose in ("customer", "external")]
    return next((p.id for p in legs if is_live(p)), legs[0].id if legs else None)


def call_in(conversation: Any, leg: Any | None, plan: Plan) -> Call:
    """The call to act on in a live conversation: `leg`, else the agent or queue leg to move; in place, its queue leg.

    Without `leg` (every selector but the agent's), a move means "make sure the call is in the
    target queue": a call answered by an agent from there comes back skipped, so that a rerun
    never takes it from that agent. Raises NoLiveCall when there is nothing to act on: the call
    ended, or (in place) it waits in no queue.
    """
    if conversation_ended(conversation):
        raise NoLiveCall(f"conversation {conversation.id} has ended; nothing to do")
    if plan.in_place:
        leg = waiting_leg(conversation)
        if leg is None:
            raise NoLiveCall(f"conversation {conversation.id} is not waiting in a queue ("
                             f"{describe_participants(conversation)}); nothing was changed")
    chosen = leg or pick_participant_to_replace(conversation)
    if chosen is None:
        raise NoLiveCall(f"conversation {conversation.id} has no agent on the call and is not waiting in a queue "
                         f"({describe_participants(conversation)})")
    target = (chosen.queue_id, None) if plan.in_place else (plan.queue_id, plan.queue_name)
    call = Call(conversation.id, chosen.id, chosen.purpose, chosen.user_id, chosen.queue_id, *target,
                customer_id=customer_leg(conversation), known_legs=frozenset(p.id for p in conversation.participants),
                conversation_start=conversation.start_time, media=media_of(chosen), scheduled=is_scheduled(chosen),
                move=not plan.in_place, plan=plan)
    if leg is None and call.move and chosen.purpose == "agent" and chosen.queue_id == call.queue_id:
        call.skip(f"already answered from queue {call.queue_name or call.queue_id} (by user {chosen.user_id}); "
                  "nothing to do")
    elif call.move and not (chosen.purpose == "acd" and chosen.queue_id == call.queue_id) and \
            transfer_pending(conversation):  # another run's transfer (or an agent's), not applied yet
        call.hold = "a transfer of this call is still pending (an earlier or another run's?)"
    return call


def read_conversations(org: Org, ids: list[str], concurrency: int) -> list[Any]:
    """Each conversation read live, `concurrency` at a time: a Conversation, or the NoLiveCall saying it is gone."""
    import concurrent.futures

    def read(conversation_id: str) -> Any:
        try:
            return org.conversation(conversation_id)
        except NoLiveCall as exc:
            return exc

    with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(read, ids))


def list_named_calls(org: Org, settings: Settings, plan: Plan) -> list[Call]:
    """The calls --conversations-file lists, each read live; those ended, gone or (in place) not waiting are skipped.

    A call an earlier run's result line says was moved, changed or skipped is skipped unread: a
    rerun acts only on what that run did not finish (not sent, failed, outcome unknown, routing
    not set).
    """
    calls = {entry.conversation_id: Call(entry.conversation_id, None, queue_id=plan.queue_id, plan=plan,
                                         queue_name=plan.queue_name, move=not plan.in_place, media=entry.media)
             for entry in settings.listed}
    for entry in settings.listed:
        if entry.finished(plan):
            calls[entry.conversation_id].skip(f"{DONE_EARLIER} (its line {entry.line}: {entry.status})")
    entries = {entry.conversation_id: entry for entry in settings.listed}
    unfinished = [cid for cid, call in calls.items() if not call.skipped]
    for conversation_id, conversation in zip(unfinished, read_conversations(org, unfinished, settings.concurrency),
                                             strict=True):
        try:
            if isinstance(conversation, NoLiveCall):
                raise NoLiveCall(f"conversation {conversation_id} is gone; the call ended")
            entry = entries[conversation_id]
            earlier = next((p for p in conversation.participants or [] if p.id == entry.participant_id), None)
            agent = pick_agent_participant(conversation)
            if earlier is not None and earlier.purpose == "acd" and agent is not None and not plan.in_place:
                # The earlier run found it waiting in a queue; an agent has answered it since: not to be taken away.
                raise NoLiveCall(f"answered since the earlier run (by user {agent.user_id}); nothing to do")
            call = calls[conversation_id] = call_in(conversation, None, plan)
            # That run sent a transfer of it (accepted, or its answer lost: "unknown") not seen applied: while the leg
            # it moved is there, it may still apply, so nothing is sent; once gone, the call moved (or was answered).
            sent_earlier = sent_transfer(entry.status, entry.from_queue_id, entry.queue_id) and not plan.in_place
            if sent_earlier and not call.decided and call.from_queue_id != call.queue_id:  # not seen in its target
                if earlier is not None and is_live(earlier):
                    what = "transfer" if entry.status == "transferred" else "transfer, whose answer was lost,"
                    call.hold = (f"the earlier run's {what} of it (its line {entry.line}) is not seen applied: the "
                                 "leg it moved is still there")
                elif entry.queue_id == plan.queue_id:
                    call.skip(f"moved by the earlier run (its line {entry.line}), then on elsewhere: "
                              f"{where_is(conversation)}; not moved again")
        except NoLiveCall as exc:
            calls[conversation_id].skip(str(exc))
    return list(calls.values())


def list_moves_to_undo(org: Org, settings: Settings, plan: Plan) -> list[Call]:
    """--undo: each call an earlier run moved goes back where it came from, if it still waits where it was moved."""
    calls, journal = [], org.journal()
    for record, conversation in zip(settings.listed, read_conversations(
            org, [r.conversation_id for r in settings.listed], settings.concurrency), strict=True):
        leg = None if isinstance(conversation, NoLiveCall) else waiting_leg(conversation)
        call = Call(record.conversation_id, leg and leg.id, "acd", None, record.queue_id, record.from_queue_id,
                    customer_id=None if leg is None else customer_leg(conversation), plan=plan,
                    known_legs=frozenset() if leg is None else frozenset(p.id for p in conversation.participants),
                    conversation_start=None if leg is None else conversation.start_time,
                    media=record.media if leg is None else media_of(leg), scheduled=leg is not None and is_scheduled(leg))
        if record.undo:  # its last line is an undo's own: it was put back already
            call.skip(f"put back by an earlier --undo (its line {record.line}); nothing to do")
        elif record.status == "unknown" and not isinstance(conversation, NoLiveCall) and any(
                p.id == record.participant_id and is_live(p) for p in conversation.participants or []):
            call.hold = (f"the transfer its line {record.line} says may have moved it is not seen applied: the leg it "
                         "moved is still there")
        elif leg is not None and transfer_pending(conversation):
            call.hold = "a transfer of this call is still pending (the move being undone, or an undo)"
        elif leg is not None and not call.scheduled and call.journal_key in journal:
            pass  # held when the calls are picked (held), before any of the skips below
        elif isinstance(conversation, NoLiveCall) or conversation_ended(conversation):
            call.skip("the call has ended since it was moved")
        elif record.from_queue_id is None:
            call.skip(f"its record (line {record.line}) has no fromQueueId: where it came from is unknown")
        elif leg is None:
            call.skip(f"no longer waiting in queue {record.queue_id}: {where_is(conversation)} now")
        elif leg.queue_id == record.from_queue_id:
            call.skip(f"already back in queue {record.from_queue_id}; nothing to do")
        elif leg.queue_id != record.queue_id:
            call.skip(f"moved elsewhere since: it waits in queue {leg.queue_id} now")
        calls.append(call)
    return calls


def source_queue(org: Org, settings: Settings, plan: Plan) -> tuple[str, str | None]:
    """--from-queue's (id, name; None when given by id and not looked up), locked for this run unless a dry run."""
    source_is_id = is_uuid(settings.from_queue)
    source_id, source_name = queue_to_use(org, settings.from_queue if source_is_id else None,
                                          None if source_is_id else settings.from_queue, settings.read_only)
    if source_id == plan.queue_id:
        raise UsageError(f"--from-queue and the target are the same queue ({source_name or source_id}); "
                         "choose another target")
    if not settings.read_only:
        org.lock(f"queue {source_id}")
        busy = {} if plan.in_place else org.claim({source_id}, {plan.queue_id}, following=bool(settings.follow))
        if source_id in busy:
            raise Busy(f"{busy[source_id]} queue {source_name or source_id}: calls taken out of it would be moved "
                       "back; stop that run, or wait for it to finish")
        if plan.queue_id in busy:
            raise Busy(f"{busy[plan.queue_id]} queue {plan.queue_name or plan.queue_id}: calls moved into it would be "
                       "moved on; stop that run, or wait for it to finish")
    return source_id, source_name


def list_source_queue(org: Org, settings: Settings, plan: Plan, source: tuple[str, str | None]) -> list[Call]:
    """Every call of --media analytics shows waiting in the source queue (longer than --waiting-over), oldest first.

    Callbacks are read live too: whether one is scheduled (moved by PATCH) or routed (replaced)
    shows there only. Raises NoLiveCall when none waits, unless the run follows the queue.
    """
    source_id, source_name = source
    now = dt.datetime.now(dt.timezone.utc)
    listed = sorted(list_waiting_calls(org, source_id, settings.media), key=lambda w: w.waiting_since or now)
    if settings.waiting_over is not None:
        listed = [w for w in listed if w.answered or (w.waiting_since and (now - w.waiting_since).total_seconds()
                                                      > settings.waiting_over)]
    target_id, target_name = (source_id, source_name) if plan.in_place else (plan.queue_id, plan.queue_name)
    calls = [Call(w.conversation_id, w.participant_id, "acd", None, source_id, target_id, target_name, w.waiting_since,
                  customer_id=w.customer_id, known_legs=w.legs, conversation_start=w.conversation_start,
                  media=w.media, move=not plan.in_place, plan=plan)
             for w in listed]
    for call, waiting in zip(calls, listed, strict=True):
        if waiting.answered:
            call.skip("already with an agent")
    # Read live: callbacks (scheduled or routed shows there only), and every call changed in place, which no refused
    # transfer protects: a PATCH would change the call wherever it is now, and analytics lags.
    live = [call for call in calls if not call.skipped and (call.media == "callback" or plan.in_place)]
    for call, conversation in zip(live, read_conversations(org, [c.conversation_id for c in live],
                                                           settings.concurrency), strict=True):
        leg = None if isinstance(conversation, NoLiveCall) else next(
            (p for p in conversation.participants or [] if p.id == call.participant_id and is_live(p)), None)
        waiting = leg is not None and getattr(waiting_leg(conversation), "id", None) == leg.id
        if leg is None and call.media == "callback":
            call.skip("no longer waiting: the callback ended or was answered")
        elif plan.in_place and not waiting:
            call.queue_id = None  # its line must not say it is in the source queue
            call.skip(f"no longer waiting in queue {source_name or source_id}: " + (
                "the call ended" if leg is None and isinstance(conversation, NoLiveCall) else where_is(conversation)))
        call.scheduled = leg is not None and is_scheduled(leg)
        if call.scheduled and settings.waiting_over is not None:
            call.skip("a scheduled callback, not due yet: it has not waited")
    if all(call.skipped for call in calls) and not settings.follow:
        if source_name is None:  # not looked up: is it empty, or not a queue at all?
            source_name = resolve_queue(org, source_id, None)[1]
        waiting = "are waiting" if settings.waiting_over is None else f"have waited over {settings.waiting_over:g}s"
        what = " or ".join({"voice": "voice calls", "callback": "callbacks"}[medium] for medium in settings.media)
        raise NoLiveCall(f"no {what} {waiting} in queue {source_name} ({source_id})")
    return calls


# --- --list: the calls as they are -----------------------------------------------------------

class Names:
    """Names of queues, users, skills and languages by id, each looked up once; the id itself when it cannot be."""

    def __init__(self, org: Org) -> None:
        self.org, self.known = org, {}
        self.lock = threading.Lock()

    def __call__(self, kind: str, entity_id: str | None, name: str | None = None) -> str | None:
        if not entity_id or name:
            return name or entity_id
        with self.lock:
            if (kind, entity_id) not in self.known:
                operation, parameter = {"queue": ("get_routing_queue", "queueId"), "user": ("get_user", "userId"),
                                        "skill": ("get_routing_skill", "skillId"),
                                        "language": ("get_routing_language", "languageId")}[kind]
                try:
                    found = self.org.api(f"reading {kind} {entity_id}", operation, path={parameter: entity_id}).name
                except (AuthError, NotFound, NoLiveCall, TransferRefused):  # not visible to the client: its id
                    found = None
                self.known[kind, entity_id] = found or entity_id
            return self.known[kind, entity_id]


def describe_call(conversation: Any, call: Call, names: Names) -> dict[str, Any]:
    """--list's record of a call: where it is (a queue, or an agent), how long it has waited, how it routes, and the
    leg the selector would move."""
    waiting, agent = waiting_leg(conversation), pick_agent_participant(conversation)
    record: dict[str, Any] = {"status": "listed", "conversationId": call.conversation_id, "mediaType": call.media,
                              "participantId": call.participant_id, "purpose": call.purpose}
    if waiting is not None:
        data = waiting.conversation_routing_data
        since = waiting.start_time or waiting.connected_time
        record.update(queueId=waiting.queue_id, queueName=names("queue", waiting.queue_id, waiting.queue_name),
                      scheduled=is_scheduled(waiting) or None,
                      waitingSeconds=round((dt.datetime.now(dt.timezone.utc) - since).total_seconds()) if since and
                      not is_scheduled(waiting) else None)
        for field in ROUTING if data else ():  # by name where the row names things: skills, language
            shown = field.shown(data)
            if field.named and shown:
                shown = [names(field.named, value) for value in shown] if field.many else names(field.named, shown)
            record[field.words] = None if shown in ("", None) else shown
    elif agent is not None:
        record.update(userId=agent.user_id, userName=names("user", agent.user_id),
                      queueId=agent.queue_id, queueName=names("queue", agent.queue_id, agent.queue_name))
    return {key: value for key, value in record.items() if value is not None}


def format_listed(record: Mapping[str, Any], as_json: bool) -> str:
    """One --list line: listed <id> <media> waiting in queue Q for 95s (priority 10, ...): participant P (acd)."""
    if as_json:
        return json.dumps(record, sort_keys=True)
    if "userId" in record:
        where = f"with agent {record['userName']}" + (f" (user {record['userId']})" if record["userName"] !=
                                                       record["userId"] else "")
    elif "queueId" in record:
        state = "scheduled" if record.get("scheduled") else "waiting"
        waited = f" for {record['waitingSeconds']}s" if "waitingSeconds" in record else ""
        where = f"{state} in queue {record['queueName']}{waited}"
        routing = [f"{field.words} {', '.join(record[field.words]) or '-'}" if field.many else
                   f"{field.words} {record.get(field.words, field.unset)}" for field in ROUTING
                   if not field.many or field.words in record]
        where += f" ({'; '.join(part for part in routing if part)})"
    else:
        where = "in no queue and with no agent"
    action = f"would not move it: {record['reason']}" if "reason" in record else \
        f"would move participant {record['participantId']} ({record['purpose']})"
    return f"listed {record['conversationId']} {record.get('mediaType') or 'voice'} {where}: {action}"


def list_calls(org: Org, calls: list[Call], settings: Settings, report: Report) -> list[Call]:
    """--list: print each live call the selector named, read as it is now, and what a run would do with it (the leg it
    would move, or why it would not); send nothing that changes anything."""
    names, shown = Names(org), []
    for call, conversation in zip(calls, read_conversations(org, [c.conversation_id for c in calls],
                                                             settings.concurrency), strict=True):
        if isinstance(conversation, NoLiveCall) or conversation_ended(conversation):
            continue  # gone: nothing to show
        record = describe_call(conversation, call, names)
        if call.decided:
            record["reason"] = call.reason or str(call.error)
        elif call.move and not any(p.id == call.participant_id and is_live(p) for p in conversation.participants or []):
            record["reason"] = (f"the leg it was found on ({call.participant_id}) has ended; the call is "
                                f"{where_is(conversation)}")
        report.line(format_listed(record, settings.output_json), "listing")
        call.skipped, call.error, call.dry_run = False, None, True  # done: it was shown
        shown.append(call)
    if not shown:
        raise NoLiveCall("no call to act on: " + (next((str(c.error or c.reason) for c in calls if c.decided), "")
                                                   or "the calls picked have ended"))
    log.info("listed %s; nothing was changed", plural(len(shown), "call"))
    return shown


# --- --follow: the calls that arrive while the run lasts --------------------------------------

class FollowUnavailable(TransferCallError):
    """Queue events cannot be had (a topic rejected, the WebSocket refused): the run follows by listing."""


class SocketDead(Exception):
    """The event socket was silent for longer than two heartbeats."""


def parse_time(text: Any) -> dt.datetime | None:
    """An ISO 8601 time from an event body (2026-11-27T10:31:02.123Z), or None."""
    try:
        return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def event_leg(body: Mapping[str, Any], queue_id: str, callback: bool = False) -> Mapping[str, Any] | None:
    """The queue leg an event's conversation shows live in queue_id, with no agent on the call; None otherwise.

    The event body is the conversation with flat participants (QueueConversationCallEventTopicCall
    Conversation: id, purpose, state, queue {id}, startTime, endTime): a hint, not a fact. Genesys
    refuses to transfer a leg that has ended, so acting on the event's leg never takes a call
    from an agent: an agent's leg is never the one sent.
    """
    participants = body.get("participants") or []

    def live(p: Mapping[str, Any]) -> bool:
        return not p.get("endTime") and p.get("state") not in ENDED_CALL_STATES

    if any(p.get("purpose") == "agent" and live(p) for p in participants):
        return None
    leg = next((p for p in participants if p.get("purpose") == "acd" and live(p)
                and (p.get("queue") or {}).get("id") == queue_id), None)
    # a call's queue leg is taken once it is connected (waiting); a callback's, in any live state (read live next)
    return leg if leg is not None and (leg.get("state") == "connected" or callback) else None


class Follow:
    """--follow: the calls that arrive in the source queue until the window ends, handed to send_calls as they come.

    Arrivals come from the Notifications API: a channel subscribed to the queue's topics, and a
    WebSocket read by a thread of its own (listen). An event is a hint: a voice call is acted on
    by the event's own queue leg when it is live in the source queue with no agent on the call
    (Genesys refuses to transfer an ended leg); a callback is read live first, as a listing
    does. A listing of the queue runs every LISTING_EVERY s and right after each (re)connect, so
    a missed event costs at most that; while there is no socket, every POLLING_EVERY s. A
    conversation is taken once in a run however many events or listings name it; a leg this
    machine's journal holds back waits for a later look.
    """

    def __init__(self, org: Org, settings: Settings, plan: Plan, source: tuple[str, str | None], stop: Stop,
                 report: Report) -> None:
        self.org, self.settings, self.plan, self.stop, self.report = org, settings, plan, stop, report
        self.source = source
        self.ends = time.monotonic() + (settings.follow or 0.0)
        self.taken: set[str] = set()              # legs this run picked (to act on, or decided): never again
        self.acted: list[Call] = []               # every call the run picked; a conversation it sent for is done
        self.last_look = False                    # the listing at the window's end is done
        self.held: dict[str, Call] = {}           # held back by the journal when last seen: looked at again later
        self.returned: queue.SimpleQueue[Call] = queue.SimpleQueue()  # held right before their transfer (workers)
        self.first = 0                            # acted[first:] are the calls the window added
        self.hints: queue.SimpleQueue[tuple[str, Mapping[str, Any]]] = queue.SimpleQueue()  # (media, event body)
        self.topics = {f"v2.routing.queues.{source[0]}.conversations.{'calls' if medium == 'voice' else 'callbacks'}":
                       medium for medium in settings.media}
        self.list_now = threading.Event()         # set on every (re)connect: a listing runs next
        self.connected = self.ever_connected = False
        self.last_event: dt.datetime | None = None
        self.waiting = 0                          # calls the last listing found waiting
        self.next_listing = self.said_at = time.monotonic()
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self.listen, name="transfer_call events", daemon=True)

    def start(self, calls: list[Call]) -> None:
        """Follow from now on; the calls of the first listing are taken, but for those held back (looked at again)."""
        self.held = {call.conversation_id: call for call in calls if call.held_back}
        self.taken.update(call.participant_id for call in calls if not call.held_back)
        self.acted, self.first = list(calls), len(calls)
        self.next_listing = time.monotonic() + POLLING_EVERY
        self.thread.start()

    def hold_again(self, call: Call) -> bool:
        """A call held back right before its transfer (held): looked at again at the next listing, as one held when
        it was picked. Called from the workers; True: it is the window's to report."""
        self.returned.put(call)
        return True

    def take_back(self) -> None:
        """The calls the workers handed back (hold_again) join those held: their legs may be picked again."""
        with contextlib.suppress(queue.Empty):
            while True:
                call = self.returned.get_nowait()
                self.taken.discard(call.participant_id)
                self.held[call.conversation_id] = call

    def close(self) -> list[Call]:
        """End the window: the listener stops; the calls still held back get their lines (returned)."""
        self.closed.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5.0)
        self.take_back()
        if self.held and not self.stop.signalled:  # those no longer waiting went with the other run's transfer
            self.listing()
        for call in self.held.values():
            self.report.call(call)
        return list(self.held.values())

    @property
    def calls(self) -> list[Call]:
        """The calls the window added to those of the first listing (but those handed back, held: close has them)."""
        return [call for call in self.acted[self.first:] if not call.handed_back]

    @property
    def over(self) -> bool:
        return self.stop.is_set() or time.monotonic() >= self.ends

    @property
    def done(self) -> bool:
        """Nothing more will come: stopped, or the window is over and its last listing was made."""
        return self.stop.is_set() or self.over and self.last_look

    def more(self, timeout: float) -> list[Call] | None:
        """The calls that arrived since the last look, waiting up to `timeout` s for one; None once the window is over.

        The window's end brings one last listing (unless a stop was asked for): a call whose event
        was missed since the last one is moved, not left behind with exit 0.
        """
        if self.stop.is_set() or self.over and self.last_look:
            return None
        self.take_back()
        now = time.monotonic()
        if self.over:
            self.last_look = True
            found = self.listing(last=True)
        elif self.list_now.is_set() or now >= self.next_listing:
            self.list_now.clear()
            self.next_listing = now + (LISTING_EVERY if self.connected else POLLING_EVERY)
            found = self.listing()
        else:
            found = self.arrivals(min(timeout, self.next_listing - now, self.ends - now))
        journal = self.org.journal() if found else {}
        changed = {call.conversation_id for call in self.acted if call.changed}  # never a second move in a run
        fresh = []
        for call in found:
            if call.participant_id in self.taken or call.conversation_id in changed:
                continue
            if held(call, journal):  # another run's transfer of this leg may still apply
                self.held[call.conversation_id] = call
                continue
            self.held.pop(call.conversation_id, None)
            self.taken.add(call.participant_id)
            fresh.append(call)
        self.acted += fresh
        return fresh

    def listing(self, last: bool = False) -> list[Call]:
        """The calls waiting in the source queue now (list_source_queue), and a progress line a minute."""
        try:
            calls = [call for call in list_source_queue(self.org, self.settings, self.plan, self.source)
                     if not call.decided]
        except Stopped:
            return []
        except TransferCallError as exc:  # the next listing may do better; the calls already moved stay moved
            if last:  # there is no next one: what arrived unseen may still wait, so the run is not done
                self.stop.halt(type(exc)(f"the last listing of queue {self.where}, at the window's end, failed "
                                         f"({exc}): calls that arrived since the one before may still wait there; "
                                         "look with --list", code=exc.code))
            else:
                log.warning("listing queue %s failed (%s); trying again in %gs", self.where, exc, POLLING_EVERY)
            return []
        self.org.transport.refill_budget()
        self.waiting = len(calls)
        self.held = {cid: call for cid, call in self.held.items() if cid in {c.conversation_id for c in calls}}
        if time.monotonic() - self.said_at >= LISTING_EVERY:
            self.said_at = time.monotonic()
            log.info("%s", self.progress())
        return calls

    @property
    def where(self) -> str:
        return self.source[1] or self.source[0]

    def progress(self) -> str:
        left = duration(max(0, round(self.ends - time.monotonic())))
        seen = f"last event {self.last_event.strftime('%H:%M:%SZ')}" if self.last_event else "no event yet"
        how = "events" if self.connected else f"listing every {POLLING_EVERY:g}s"
        return (f"following queue {self.where} ({how}), {left} left: moved {len(self.report.moved)} so far "
                f"({self.report.verified} verified), {self.waiting} waiting now, {seen}")

    def arrivals(self, timeout: float) -> list[Call]:
        """The calls the events received within `timeout` s show waiting in the source queue."""
        try:
            hints = [self.hints.get(timeout=max(0.0, timeout))]
        except queue.Empty:
            return []
        with contextlib.suppress(queue.Empty):
            while True:
                hints.append(self.hints.get_nowait())
        calls: dict[str, Call] = {}
        target = (self.source[0], self.source[1]) if self.plan.in_place else (self.plan.queue_id, self.plan.queue_name)
        for medium, body in hints:
            leg, conversation_id = event_leg(body, self.source[0], medium == "callback"), str(body.get("id"))
            if leg is None or leg["id"] in self.taken or conversation_id in calls:
                continue
            if medium == "callback":  # scheduled or routed shows on the live conversation only
                try:
                    conversation = self.org.conversation(conversation_id)
                except (NoLiveCall, Stopped):
                    continue
                except TransferCallError as exc:  # the next listing looks again
                    log.warning("reading callback %s failed (%s); the next listing of queue %s looks again",
                                conversation_id, exc, self.where)
                    continue
                waiting = waiting_leg(conversation)
                call = call_in(conversation, waiting, self.plan) if waiting is not None and \
                    waiting.queue_id == self.source[0] else None
                if call is not None and not call.decided:
                    calls[conversation_id] = call
                continue
            participants = body.get("participants") or []
            starts = [moment for p in participants if (moment := parse_time(p.get("startTime")))]
            calls[conversation_id] = Call(
                conversation_id, leg["id"], "acd", None, self.source[0], *target,
                waiting_since=parse_time(leg.get("connectedTime") or leg.get("startTime")),
                customer_id=next((p["id"] for p in participants if p.get("purpose") in ("customer", "external")
                                  and not p.get("endTime")), None),
                known_legs=frozenset(p["id"] for p in participants), conversation_start=min(starts, default=None),
                move=not self.plan.in_place, plan=self.plan)
        return list(calls.values())

    # --- the listener thread ---

    def listen(self) -> None:
        """Keep a socket open on a channel subscribed to the source queue's topics until the window ends.

        A dropped or silent socket is reconnected with backoff (the channel kept); one Genesys
        closes for maintenance (v2.system.socket_closing) at once. The channel is subscribed again
        at half its life, which extends it. When the channel cannot be had (a topic rejected, the
        WebSocket refused), it says so once and the run follows by listing every POLLING_EVERY s.
        """
        channel, attempt = None, 0
        while not (self.closed.is_set() or self.over):
            try:
                channel = channel or self.open_channel()
                self.read(channel)  # returns when Genesys closes the socket for maintenance
                attempt = 0
            except Stopped:
                return
            except (FollowUnavailable, AuthError) as exc:  # it would be so again: say it once
                log.warning("following queue %s by listing it every %gs, not by events: %s", self.where,
                            POLLING_EVERY, exc)
                return
            except Exception as exc:  # noqa: BLE001 - a dropped socket or a failed request: try again, listing meanwhile
                self.next_listing = min(self.next_listing, time.monotonic() + POLLING_EVERY)
                if isinstance(exc, TransferCallError):
                    channel = None  # the channel's requests failed: a new one next time
                attempt += 1
                delay = min(RECONNECT_MAX, 2.0 ** (attempt - 1))
                # said once an outage; the progress line says how the queue is followed meanwhile
                log.log(logging.WARNING if attempt == 1 else logging.DEBUG, "the event socket failed (%s); connecting "
                        "again in %.0fs, listing queue %s every %gs meanwhile", str(exc) or type(exc).__name__, delay,
                        self.where, POLLING_EVERY)
                self.closed.wait(delay)

    def open_channel(self) -> types.SimpleNamespace:
        """A notification channel subscribed to the source queue's topics (calls, callbacks: as --media says)."""
        channel = self.org.api("opening a notification channel", "post_notifications_channels")
        uri = channel.connect_uri or ""
        parts, api = urllib.parse.urlsplit(uri), urllib.parse.urlsplit(self.org.base_url)
        # The socket's host is the org's: streaming.<domain> for api.<domain>, or the API host itself (a test org).
        allowed = {f"wss://streaming.{api.netloc.removeprefix('api.')}",
                   f"{'wss' if api.scheme == 'https' else 'ws'}://{api.netloc}"}
        if f"{parts.scheme}://{parts.netloc}" not in allowed:
            raise FollowUnavailable(f"the channel's socket is on {parts.scheme}://{parts.netloc}, which is not this "
                                    "org's")
        namespace = types.SimpleNamespace(id=channel.id, uri=uri)
        self.subscribe(namespace, channel.expires)
        return namespace

    def subscribe(self, channel: types.SimpleNamespace, expires: dt.datetime | None = None) -> None:
        """Subscribe the channel to the topics (again: that extends its life); FollowUnavailable if one is rejected."""
        answer = self.org.api("subscribing to the queue's events", "put_notifications_channel_subscriptions",
                              path={"channelId": channel.id}, body=[{"id": topic} for topic in self.topics])
        for topic in answer.entities or []:
            if topic.state != "Permitted":
                missing = f"; missing permissions: {', '.join(topic.missing_permissions)}" \
                    if topic.missing_permissions else ""
                raise FollowUnavailable(f"topic {topic.id} was {topic.state or 'not permitted'} "
                                        f"({topic.rejection_reason or 'no reason given'}{missing})")
        now = dt.datetime.now(dt.timezone.utc)
        life = (expires - now).total_seconds() if expires else getattr(channel, "life", 86400.0)
        channel.life, channel.renew_at = life, time.monotonic() + life / 2

    def read(self, channel: types.SimpleNamespace) -> None:
        """Read the channel's socket until the window ends or Genesys closes it for maintenance; raise when it fails."""
        import socket

        httpx_ws = import_dependency("httpx_ws")
        url = re.sub(r"^ws", "http", channel.uri)  # httpx speaks http(s); the upgrade makes it a WebSocket
        try:
            with httpx_ws.connect_ws(url, self.org.transport.client, keepalive_ping_interval_seconds=None) as ws:
                self.connected = self.ever_connected = True
                self.list_now.set()  # what arrived while no socket was open
                try:
                    self.receive(ws, channel)
                finally:  # say goodbye, then cut the socket: a read blocked on a dead one must end too
                    with contextlib.suppress(Exception):
                        ws.send(import_dependency("wsproto").events.CloseConnection(code=1000))
                    with contextlib.suppress(Exception):
                        ws.stream.get_extra_info("socket").shutdown(socket.SHUT_RDWR)
        except httpx_ws.WebSocketUpgradeError as exc:
            status = exc.response.status_code
            refused = f"the WebSocket to {urllib.parse.urlsplit(url).netloc} was refused (HTTP {status}"
            if status in (401, 403, 407) and not self.ever_connected:  # by a proxy or a firewall: so it stays
                raise FollowUnavailable(f"{refused}; a proxy or firewall?)") from None
            if status in (404, 410):
                raise TransferCallError(f"{refused}; the channel is gone: opening a new one)") from None
            raise ConnectionError(f"{refused})") from None  # busy, or a blip: the same channel again, later
        finally:
            self.connected = False

    def receive(self, ws: Any, channel: types.SimpleNamespace) -> None:
        """Hand each queue event to `hints`; return on socket_closing; raise SocketDead after two heartbeats' silence."""
        heard = time.monotonic()
        while not (self.closed.is_set() or self.over):
            if time.monotonic() >= channel.renew_at:
                self.subscribe(channel)
            try:
                text = ws.receive_text(timeout=max(0.05, min(1.0, channel.renew_at - time.monotonic())))
            except queue.Empty:
                if time.monotonic() - heard > 2 * HEARTBEAT:
                    raise SocketDead(f"no heartbeat for {2 * HEARTBEAT:g}s") from None
                continue
            heard = time.monotonic()
            with contextlib.suppress(ValueError):
                message = json.loads(text)
                topic = message.get("topicName") if isinstance(message, dict) else None
                if topic == "v2.system.socket_closing":
                    log.info("Genesys is closing the event socket for maintenance; opening a new one")
                    return
                if topic in self.topics and isinstance(message.get("eventBody"), dict):
                    self.last_event = dt.datetime.now(dt.timezone.utc)
                    self.hints.put((self.topics[topic], message["eventBody"]))


# --- steps and the runner: the requests for a call, sending them paced, verifying, the exit code ---

def plan_requests(call: Call) -> list[str]:
    """The requests a call's plan sends, in order, as a dry run prints them."""
    def request(operation: str, body: Any, **path: str) -> str:
        method, template, _, _ = OPERATIONS[operation]
        return f"{method} {template.format(**path)} {json.dumps(body)}"

    plan, requests = call.plan, []
    if plan.attributes:
        requests.append(request(ATTRIBUTES[call.media], {"attributes": plan.attributes},
                                conversationId=call.conversation_id, participantId=call.customer_id or "?"))
    if call.move and call.scheduled:
        requests.append(request("patch_conversations_callbacks", scheduled_callback_body(call)))
    elif call.move:
        requests.append(request(TRANSFERS[call.media], transfer_body(call.queue_id),
                                conversationId=call.conversation_id, participantId=call.participant_id))
    if plan.routing:
        requests.append(request("patch_routing_conversation", plan.routing, conversationId=call.conversation_id))
    return requests


def bulk_words(settings: Settings, plan: Plan, count: int) -> tuple[str, str]:
    """How a bulk run speaks of what it does: ("move", "12 calls from Support to Overflow"), ("change", ...)."""
    calls = plural(count, "call")
    source = {"from_queue": f"waiting in {settings.from_queue}" if plan.in_place else f"from {settings.from_queue}",
              "list": f"listed in {'standard input' if settings.source == '-' else settings.source}"}
    where = source["from_queue"] if settings.from_queue else source["list"]
    if settings.undo:
        return "move", f"{calls} back to the {'queue it' if count == 1 else 'queues they'} came from"
    if plan.in_place:
        return "change", f"{calls} {where}"
    return "move", f"{calls} {where} to {plan.queue_name or plan.queue_id}"


def confirm_bulk(count: int, what: str, settings: Settings, stdin: Any = None) -> None:
    """Ask before acting on more than CONFIRM_ABOVE calls (`what`: "move 12 calls from ... to ..."), or want --yes."""
    stdin = stdin or sys.stdin
    if count <= CONFIRM_ABOVE or settings.yes or settings.dry_run:
        return
    if not stdin.isatty():
        raise UsageError(f"this would {what}; pass --yes to confirm when not running on a terminal")
    sys.stderr.write(f"{what[0].upper()}{what[1:]}? [y/N] ")
    sys.stderr.flush()
    if stdin.readline().strip().lower() not in ("y", "yes"):
        raise UsageError("not confirmed; nothing was changed")


def act_on_call(org: Org, call: Call, report: Report, watch_live: bool) -> None:
    """Carry out the plan on one call: its participant data, the transfer, and (watched live) verification and routing.

    The moment the transfer is accepted the call's line says it moved, before any verification.
    A batch's moved calls get their routing once verification has seen them in the target queue
    (send_calls). The outcome goes on the call; our errors are never raised.
    """
    plan = call.plan
    call.started = time.monotonic()
    if held(call, org.journal()):  # before anything is written on it (transfer() looks again right before sending)
        return
    try:
        if plan.attributes:  # first: the target queue's in-queue flow and the agent will see it
            write_attributes(org, call)
        if call.move:
            transfer(org, call)
            if call.moved == "yes" and not call.final:
                report.call(call)  # the fact that it moved is on record before anything else is asked
                if watch_live:
                    wait_for_transfer(org, call, org.wait)
    except Stopped as exc:
        call.cut_short = True
        call.reason = call.reason or (f"not verified: {exc.reason}" if call.moved == "yes" else
                                      f"not sent: {exc.reason}")
    except NoLiveCall as exc:
        call.skip(str(exc), exc)
    except TransferCallError as exc:
        call.fail(f"not verified: {exc}" if call.moved == "yes" else str(exc), exc)
    if plan.routing and (watch_live or not call.move or call.verified):  # verified: seen by the unclear-answer watch
        route_when_in_queue(org, call, confirm_live=watch_live)


def route_when_in_queue(org: Org, call: Call, confirm_live: bool) -> None:
    """Change the call's routing if it is where the plan wants it, in its target queue (or, in place, where it waits)."""
    if call.skipped or call.moved == "unknown" or call.error is not None and call.moved != "yes":
        return
    if call.move and not call.verified:  # not seen in its target queue (or not looked at): no PATCH to a guess
        call.routing, call.routing_reason = "failed", "not sent: " + (
            call.reason.removeprefix("not verified: ") if call.cut_short and call.reason else
            "the call was not seen in its target queue")
        return
    change_routing(org, call, confirm_live)


def write_attributes(org: Org, call: Call) -> None:
    """Merge the plan's participant data into the call's customer participant."""
    action = f"writing participant data on conversation {call.conversation_id}"
    if not call.customer_id:
        raise TransferRefused(f"{action}: the call has no customer participant to write it on; nothing was changed")
    try:
        call.sent = True
        org.api(action, ATTRIBUTES[call.media],
                path={"conversationId": call.conversation_id, "participantId": call.customer_id},
                body={"attributes": dict(call.plan.attributes)})
        call.data_written = True
    except MaybeApplied as exc:  # no clear answer, then no more tries: the data may be there
        call.data_written, call.cut_short = True, exc.stopped is not None
        raise
    except (TransferRefused, NoLiveCall) as exc:
        gone = why_not_waiting(org, call) if call.purpose == "acd" else None
        if gone:
            raise NoLiveCall(f"{action}: the call was {gone} first; nothing was changed", code=exc.code) from None
        raise type(exc)(f"{exc}; the call was not {'moved' if call.move else 'changed'}", code=exc.code) from None


def change_routing(org: Org, call: Call, confirm_live: bool) -> None:
    """PATCH a waiting call's priority, skills and language, and confirm they took; the outcome goes on the call.

    Confirmed on the live conversation's conversationRoutingData (confirm_live), or else by the
    values the PATCH answers with: the values now in force. Genesys' error for a call that is no
    longer in a queue is unverified, so a refused PATCH is told apart by reading the call: one
    answered or ended meanwhile needs no routing (skipped); one still waiting did not change.
    """
    routing, action = call.plan.routing, f"changing the routing of conversation {call.conversation_id}"
    try:
        call.sent = True
        answer = org.api(action, "patch_routing_conversation", path={"conversationId": call.conversation_id},
                         body=dict(routing))
        if confirm_live:
            try:
                answer = queue_routing_data(org.conversation(call.conversation_id))
            except Stopped as exc:  # accepted: only the look at the live call was cut short
                call.routing, call.routing_reason, call.cut_short = "applied", f"not confirmed: {exc.reason}", True
                return
        if answer is None or not routing_shows(answer, routing):
            raise TransferRefused(f"{action}: accepted, but the call does not show the values asked for "
                                  f"({json.dumps(routing)})")
        call.routing = "applied"
        call.verified = call.verified or not call.move  # in place, the change is what was to be verified
        return
    except MaybeApplied as exc:  # no clear answer, then no more tries: it may stand
        call.routing, call.routing_reason, call.error = "unknown", str(exc), exc
        call.cut_short = call.cut_short or exc.stopped is not None
        return
    except (AuthError, Unavailable, Stopped) as exc:  # nothing to learn from reading the call
        error: TransferCallError = exc
    except TransferCallError as exc:
        try:
            gone = why_not_waiting(org, call)
        except TransferCallError:
            gone = None
        if gone:
            call.routing, call.routing_reason = "skipped", f"the call was {gone} before the routing change"
            if not call.move:
                call.skip(call.routing_reason, NoLiveCall(f"{action}: {call.routing_reason}"))
            return
        error = exc
    call.routing, call.routing_reason, call.error = "failed", str(error), error
    call.cut_short = call.cut_short or isinstance(error, Stopped)


def queue_routing_data(conversation: Any) -> Any | None:
    """The conversationRoutingData of the call's live queue leg, or None when it waits in no queue."""
    leg = queue_leg(conversation)
    return leg.conversation_routing_data if leg else None


def routing_shows(data: Any, routing: Mapping[str, Any]) -> bool:
    """True when routing data (conversationRoutingData, or the PATCH's answer) holds every value asked for."""
    return all(same_routing_value(field.shown(data), routing[field.key]) for field in ROUTING if field.key in routing)


def why_not_waiting(org: Org, call: Call) -> str | None:
    """Why a call no longer waits in a queue ("answered by an agent", "ended"), or None while it does."""
    try:
        conversation = org.conversation(call.conversation_id)
    except NoLiveCall:
        return "ended"
    if conversation_ended(conversation):
        return "ended"
    if pick_agent_participant(conversation):
        return "answered by an agent"
    return None if queue_routing_data(conversation) is not None else "no longer in a queue"


def send_calls(org: Org, calls: list[Call], settings: Settings, stop: Stop, report: Report,
               follow: Follow | None = None) -> None:
    """Act on each call, `concurrency` at a time, and verify; report each fact about a call as soon as it is known.

    One call is watched live (wait_for_transfer), its routing then changed and confirmed on the
    live call. With routing to change, a batch starts the same way, one call at a time, until
    one call has its routing applied: a change the role may not make (a permission --check
    cannot probe) stops the run with one call changed, not all of them moved without it. The
    rest of a batch is checked by reading the moved calls from analytics in bulk
    (seen_in_queue), every VERIFY_EVERY seconds or PAGE_SIZE calls while it still sends, and to
    the end of --wait after; calls analytics does not show are read live on the same schedule
    when its read fails, and once each at the end. Each call seen gets its routing change then,
    confirmed by the PATCH's answer (no extra read per call). A stop (signal) lets the requests
    in flight finish and sends nothing more. With `follow`, the calls that arrive join the batch as
    they come, until its window ends.
    """
    import concurrent.futures

    todo = list(calls)
    awaiting: dict[str, Call] = {}  # moved, not yet seen in the target queue
    lock = threading.Lock()

    def halt_on(call: Call) -> bool:
        """Stop starting calls after an error every further one would hit; False for a call held back right before
        its transfer (held), which a --follow window looks at again (not reported now)."""
        if call.held_back:  # a changed one (its participant data written) is reported now, not looked at again
            return follow is None or call.changed or not follow.hold_again(call)
        if isinstance(call.error, HALTING):
            stop.halt(call.error)
        return True

    def guarded(task: Callable[[Call], None], call: Call) -> None:
        try:
            task(call)
        except Exception as exc:  # noqa: BLE001 - a bug must not cost the other calls their records
            log.debug("unexpected error on conversation %s", call.conversation_id, exc_info=True)
            error = TransferCallError(f"unexpected error: {type(exc).__name__}: {exc}")
            call.fail(f"{error} (run with -v for the traceback)", error)
            stop.halt(error)
            report.call(call)

    def watched(call: Call) -> None:
        act_on_call(org, call, report, watch_live=True)
        if halt_on(call):
            report.call(call)

    def arrived(timeout: float) -> bool:
        """Add the calls that arrived (waiting up to `timeout` s for one) to todo; False once the window is over."""
        more = follow.more(timeout) if follow is not None else None
        todo.extend(more or [])
        return more is not None

    probing = (follow.plan if follow else calls[0].plan).routing or len(calls) == 1 and follow is None
    while probing and not stop.is_set() and (todo or arrived(POLL_INTERVAL)):
        if not todo:
            continue
        call = todo.pop(0)  # one at a time, watched live, until a routing change went through
        guarded(watched, call)
        if call.routing == "failed" and call.error is not None:
            stop.halt(call.error)
        if call.routing == "applied":
            break
    if stop.is_set() or not todo and (follow is None or follow.done):
        return

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=settings.concurrency)
    futures: list[concurrent.futures.Future[None]] = []

    def work(call: Call) -> None:
        if stop.is_set():
            return  # never sent: reported by the caller
        act_on_call(org, call, report, watch_live=False)
        if not halt_on(call):
            return
        if call.moved == "yes" and not call.final:
            with lock:
                awaiting[call.conversation_id] = call
        else:
            report.call(call)

    def routed(call: Call) -> None:
        """A moved call seen in its queue: change its routing, then report it."""
        if stop.error:  # the run stopped starting calls: do not start their routing either
            call.routing, call.routing_reason = "failed", f"not sent: {stop.reason}"
        else:
            route_when_in_queue(org, call, confirm_live=False)
            halt_on(call)
        report.call(call)

    def submit(task: Callable[[Call], None], call: Call) -> None:
        futures.append(pool.submit(guarded, task, call))

    def seen(call: Call) -> None:
        call.verified = not call.skipped  # seen in its queue, or found ended
        with lock:
            awaiting.pop(call.conversation_id, None)
        if call.plan.routing:
            submit(routed, call)
        else:
            report.call(call)

    def verify(until: float) -> None:
        """Check the awaiting calls until all are seen or `until`: in analytics, or live while analytics fails."""
        pause, warned = POLL_INTERVAL / 2, False
        while not stop.signalled:
            with lock:
                batch = list(awaiting.values())
            if not batch:
                return
            try:
                found = seen_in_queue(org, batch)
            except Stopped:
                raise
            except TransferCallError as exc:
                if not warned:
                    log.warning("checking the moved calls in analytics failed (%s); reading each one live", exc)
                    warned = True
                found = [call for call in batch if landed_or_ended(org, call)]
            for call in found:
                seen(call)
            if not awaiting or time.monotonic() + pause > until:
                return
            stop.wait(pause)  # ends at once on a signal
            pause = min(pause * 2, 4.0)

    following = follow is not None
    last_check, announced = time.monotonic(), False
    try:
        while True:
            for call in todo:
                submit(work, call)
            todo.clear()
            following = following and arrived(0.2)
            futures[:] = [future for future in futures if not future.done()]
            _, running = concurrent.futures.wait(list(futures), timeout=0 if following else 0.2)
            report.tick()
            if stop.signalled and not announced:
                announced = True
                log.warning("%s: sending nothing more; waiting for the requests in flight", stop.reason)
            if not running and not following:
                break
            since, every = time.monotonic() - last_check, VERIFY_EVERY if follow is None else FOLLOW_VERIFY_EVERY
            if awaiting and (since >= every or (len(awaiting) >= PAGE_SIZE and since >= every / 5)):
                last_check = time.monotonic()
                try:
                    verify(until=0.0)  # one check now; the rest at the end
                except Stopped:
                    pass  # announced above; nothing is checked any more
        try:
            verify(until=time.monotonic() + settings.wait)
            for call in list(awaiting.values()):  # not seen by analytics: read each
                if landed_or_ended(org, call):
                    seen(call)
        except TransferCallError as exc:  # verification itself failed: what was moved stays moved
            for call in awaiting.values():
                call.reason = call.reason or f"not verified: {exc}"
        concurrent.futures.wait(list(futures))  # the routing changes of the last calls seen
    except Exception as exc:
        stop.halt(TransferCallError(f"unexpected error: {type(exc).__name__}: {exc}"))
        raise
    finally:
        pool.shutdown(wait=True)
        for call in awaiting.values():
            if call.skipped:
                pass
            elif stop.signalled:
                call.reason, call.cut_short = call.reason or f"not verified: {stop.reason}", True
            else:
                call.fail(call.reason or f"not seen in queue {call.queue_name or call.queue_id} within "
                          f"{settings.wait:g}s; check the call")
            if call.plan.routing:
                route_when_in_queue(org, call, confirm_live=False)
            report.call(call)


def landed_or_ended(org: Org, call: Call) -> bool:
    """Read one moved call live: True once it is in its target queue (verified) or ended meanwhile (skipped)."""
    try:
        seen = watch(org, call, 0.0, lambda seen: True)[0]
    except NoLiveCall:
        seen = "ended"
    if seen in ENDED:
        call.skip("the call ended while moving")
    return seen == "landed" or seen in ENDED


def run(org: Org, settings: Settings, report: Report, stop: Stop) -> list[Call]:
    """Select the calls, plan, send them paced, verify, and report: the one pipeline of every mode."""
    plan = make_plan(org, settings)
    source = source_queue(org, settings, plan) if settings.from_queue else None
    calls = select_calls(org, settings, plan, source)
    follow = Follow(org, settings, plan, source, stop, report) if settings.follow and source else None
    report.total, report.following = len(calls), follow is not None
    if settings.list_calls:
        return list_calls(org, calls, settings, report)
    for call in calls:
        if call.decided and not (follow and call.held_back):  # a follow run looks at those again (Follow.start)
            report.call(call)
    todo = [call for call in calls if not call.decided]
    moving = any(call.move for call in todo)  # a list's calls already in the target are changed in place
    verb, what = bulk_words(settings, dataclasses.replace(plan, in_place=plan.in_place or not moving), len(todo))
    if settings.dry_run:
        requests = 0
        for call in todo:
            call.requests, call.dry_run = plan_requests(call), True
            requests += len(call.requests)
            report.call(call)
        if not settings.single:
            log.info("dry run: would %s %s with %s; nothing was sent", verb, what, plural(requests, "request"))
        return calls
    if todo and not settings.single or follow is not None:  # a follow may move any number of calls: always asked
        confirm_bulk(len(todo) if follow is None else CONFIRM_ABOVE + 1, f"{verb} {what}" + (
            f", then every call that arrives there for {duration(settings.follow)}" if follow else ""), settings)
        if todo:
            log.info("%s %s, %d at a time", verb[:-1] + "ing", what, min(settings.concurrency, len(todo)))
        if follow is not None:
            log.info("then following queue %s for %s: moving each call that arrives", follow.where,
                     duration(settings.follow))
    elif todo:
        call = todo[0]
        log.info("%s conversation %s participant %s (%s)%s", "transferring" if call.move else "changing",
                 call.conversation_id, call.participant_id, call.purpose,
                 f" to queue {call.queue_name or call.queue_id}" if call.move else "")
    report.requests_before, report.started = org.requests_sent, time.monotonic()  # the rate leaves out the prompt
    try:
        stop.preparing = False  # from here a signal lets the requests in flight finish
        if follow is not None:
            follow.start(calls)
        if (todo or follow) and not stop.is_set():
            with report.sending():
                send_calls(org, todo, settings, stop, report, follow)
    finally:
        if follow is not None:
            held = follow.close()
            calls[:] = [call for call in calls if not call.handed_back] + held
            todo += follow.calls
            calls += follow.calls
        for call in todo:
            if not call.sent and not call.reported and not call.handed_back:
                call.cut_short = stop.signalled
                call.reason = f"not sent: {stop.reason}"
                report.call(call)
    if not settings.single:
        report.summary()
    return calls


# --- preflight: --check ------------------------------------------------------------------------

NIL_ID = "00000000-0000-4000-8000-000000000000"  # no conversation, queue or user has this id


def check_permissions(org: Org, settings: Settings) -> tuple[list[dict[str, str]], list[str]]:
    """Probe each permission the chosen mode needs (all, when none is chosen) without changing anything.

    Reads that need a permission answer 403 without it; reading an id that does not exist
    answers 404 when the permission is there. The transfer itself cannot be probed without
    sending a transfer, so it is reported "unknown". Returns the rows, and the queues and users
    the command names that do not exist.
    """
    mode_given = any((settings.user_id, settings.user_email, settings.conversation_id, settings.caller,
                      settings.from_queue, settings.source))
    needs_analytics = not settings.conversation_id  # every other mode finds or checks its calls through analytics
    probes: list[tuple[str, str, Callable[[], Any] | None]] = [  # (permission, needed for, probe)
        ("conversation:communication:view", "reading the call and verifying the transfer",
         lambda: org.send("get_conversation", path={"conversationId": NIL_ID})),
        ("conversation:communication:blindTransferQueue", "the transfer (or ...:blindTransfer)", None),
    ]
    if needs_analytics:
        now = dt.datetime.now(dt.timezone.utc)
        last_minute = {**details_query({"mediaType": "voice"}, now, order="desc", page_size=1),
                       "interval": f"{iso(now - dt.timedelta(minutes=1))}/{iso(now)}"}
        probes.append(("analytics:conversationDetail:view", "finding an agent's call, listing a queue's calls",
                       lambda: org.send("post_analytics_conversations_details_query", body=last_minute)))
    probes.append(("routing:queue:view", "looking up and checking queues",
                   lambda: org.send("get_routing_queues", query={"pageSize": 1})))
    if not mode_given or settings.user_email:
        nobody = {"query": [{"type": "EXACT", "fields": ["email"], "value": "nobody@invalid.example"}]}
        probes.append(("directory:user:view", "--user-email",
                       lambda: org.send("post_users_search", body=nobody)))
    if not mode_given or settings.changes_routing:
        probes.append(("routing:conversation:edit", ", ".join(field.flag for field in ROUTING), None))
    for field in ROUTING:  # a name lookup that needs a permission of its own (languages need none)
        permission = field.named and NAMED[field.named][4]
        if permission and (not mode_given or settings.routing.get(field.key)):
            probes.append((permission, f"{field.flag} by name",
                           functools.partial(org.send, NAMED[field.named][2], query={"pageSize": 1})))
    if not mode_given or "callback" in settings.media:
        probes.append(("conversation:communication:blindTransfer", "moving callbacks waiting in a queue", None))
        probes.append(("conversation:callback:edit", "moving scheduled callbacks (not offered yet)", None))
    rows = []
    for permission, needed_for, probe in probes:
        result, note = "unknown", "cannot be checked without changing a call"
        if probe is not None:
            try:
                probe()
                result, note = "ok", ""
            except load_sdk().ApiException as exc:
                status, code, _, _ = error_details(exc)
                if status == 401:
                    raise api_error(exc, "checking permissions") from None
                result, note = {403: ("missing", f"{code}: add it to the OAuth client's role"),
                                404: ("ok", "")}.get(status, ("unknown", f"answered {status} {code}"))
        rows.append({"permission": permission, "neededFor": needed_for, "result": result, "note": note})
    source = settings.from_queue
    lookups = [lambda: make_plan(org, settings)]  # the target queue, skills and language
    lookups += [lambda: resolve_queue(org, *((source, None) if is_uuid(source) else (None, source)))] * bool(
        source)
    lookups += [lambda: find_user_by_email(org, settings.user_email)] * bool(settings.user_email)
    not_found = []
    for lookup in lookups:
        try:
            lookup()
        except UsageError as exc:
            not_found.append(str(exc))
        except AuthError:
            pass  # the table names the permission that is missing
    return rows, not_found


def run_check(org: Org, settings: Settings, report: Report) -> list[Call]:
    """Print the permission table; AuthError when the role lacks a permission, NotFound when a named queue or user is
    missing; no call is acted on."""
    rows, not_found = check_permissions(org, settings)
    report.line(format_check(rows, settings.output_json), "check")
    missing = [r["permission"] for r in rows if r["result"] == "missing"]
    if missing:
        raise AuthError(f"the OAuth client's role lacks {', '.join(missing)}; add "
                        f"{'it' if len(missing) == 1 else 'them'} and run --check again")
    if not_found:
        raise NotFound("; ".join(not_found))
    return []


def format_check(rows: list[dict[str, str]], as_json: bool) -> str:
    if as_json:
        return "\n".join(json.dumps(row, sort_keys=True) for row in rows)
    lines = [f"{'permission':<47}{'needed for':<50}result"]
    lines += [f"{r['permission']:<47}{r['neededFor']:<50}{r['result']}{'  (' + r['note'] + ')' if r['note'] else ''}"
              for r in rows]
    return "\n".join(lines)


# --- command line --------------------------------------------------------------------------

class ArgumentParser(argparse.ArgumentParser):
    """argparse, whose errors end the run as every usage error does (exit 2, one line, the --json summary record)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        import difflib

        flags = [flag for action in self._actions for flag in action.option_strings if flag.startswith("--")]
        unknown = [word for word in re.findall(r"(?<![\w-])--[\w-]+", message.partition("unrecognized arguments:")[2])
                   if word not in flags]  # a known flag after "--" is no typo
        close = {flag: difflib.get_close_matches(flag, flags, n=3, cutoff=0.75) for flag in unknown}
        hints = "".join(f"did you mean {' or '.join(found)} (not {flag})? " for flag, found in close.items() if found)
        raise UsageError(f"{hints}{message} (see --help)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    variables = "\n".join(f"  {name:<24}{meaning}" for name, meaning in ENV_VARS.items())
    parser = ArgumentParser(
        prog="transfer_call.py", allow_abbrev=False,  # a typo of one flag must not be taken for another
        # a fixed width: --help reads the same in every terminal, and as in the README
        formatter_class=lambda prog: argparse.RawDescriptionHelpFormatter(prog, width=100),
        description="Blind-transfer a live Genesys Cloud voice call to another queue and verify it landed.",
        epilog=f"""\
examples:
  python transfer_call.py --user-id 6e5c2c1a-0f0e-4b5e-9d53-0c2b9f0a4d11 --queue-name "Billing Overflow"
  python transfer_call.py --conversation-id 1d6f... --queue-id 8c2e... --dry-run
  python transfer_call.py --user-email agent@example.com --queue-id 8c2e... --json
  python transfer_call.py --from-queue Support --queue-name "Billing Overflow" --dry-run
  python transfer_call.py --from-queue Support --queue-name Overflow --priority 100 --no-skills \\
      --attribute transferReason="Support outage" --yes
  python transfer_call.py --conversation-id 1d6f... --priority 50
  python transfer_call.py --caller "+1 (317) 555-1234" --queue-name Overflow
  python transfer_call.py --from-queue Support --waiting-over 10m --priority 100 --yes
  python transfer_call.py --from-queue Support --queue-name Overflow --follow 45m --yes
  python transfer_call.py --undo moved.jsonl --yes

environment variables (a flag replaces every variable of its group, "which call" or "where to";
the environment replaces the .env file the same way):
{variables}

{EXIT_CODE_HELP}""")
    which = parser.add_argument_group("which call")
    which.add_argument("--user-id", help="agent whose connected call is moved")
    which.add_argument("--user-email", help="agent, found by email (ignoring case)")
    which.add_argument("--conversation-id", help="conversation to move (agent-connected or waiting in a queue)")
    which.add_argument("--caller", metavar="NUMBER", help="the live call from this number, with its country code "
                       "(+1 317 555 1234)")
    which.add_argument("--from-queue", metavar="ID_OR_NAME",
                       help="every voice call waiting in this queue (bulk move)")
    which.add_argument("--conversations-file", metavar="PATH", help="the calls listed in PATH (- for standard input): "
                       "a conversation id, or an earlier run's result line, a line; a call that run finished is "
                       "skipped")
    which.add_argument("--undo", metavar="RESULTS", help="put back the calls an earlier run's result lines (PATH, or "
                       "- for standard input) say it transferred")
    target = parser.add_argument_group("where to")
    target.add_argument("--queue-id", help="target queue id")
    target.add_argument("--queue-name", help="target queue, by name ignoring case (must be unique)")
    routing = parser.add_argument_group(
        "how the call routes (on the move to the target queue; without one, in place where it waits)")
    for field in ROUTING:
        routing.add_argument(field.flag, action="append" if field.many else "store", metavar=field.metavar,
                             help=field.help)
        if field.clear:
            routing.add_argument(field.clear, action="store_true", help=field.clear_help)
    routing.add_argument("--attribute", action="append", metavar="KEY=VALUE",
                         help="participant data on the customer, repeatable (written before the move)")
    parser.add_argument("--dry-run", action="store_true", help="find everything and print the requests; change nothing")
    parser.add_argument("--list", action="store_true", help="print the calls the selector picks, as they are now "
                        "(where, waited, priority, skills, language); change nothing")
    bulk = parser.add_argument_group("many calls (--from-queue, --conversations-file, --undo)")
    bulk.add_argument("--waiting-over", metavar="DURATION", help="with --from-queue: only the calls waiting longer "
                      "than this (90, 90s, 15m, 1h)")
    bulk.add_argument("--follow", metavar="DURATION", help="with --from-queue: then keep moving the calls that arrive "
                      "there, for this long (45m, 2h), as events tell of them")
    bulk.add_argument("--media", metavar="LIST", help="with --from-queue: what moves, voice (the default) and/or "
                      "callback, e.g. voice,callback")
    bulk.add_argument("--limit", type=int, metavar="N", help="act on at most N calls, oldest first")
    bulk.add_argument("--yes", action="store_true", help=f"confirm acting on more than {CONFIRM_ABOVE} calls "
                      "without a terminal prompt")
    bulk.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, metavar="N",
                      help=f"calls in flight at once (default {DEFAULT_CONCURRENCY})")
    parser.add_argument("--wait", metavar="SECONDS",
                        help=f"how long to verify the transfer (default {DEFAULT_WAIT:g}; 0 = do not verify)")
    parser.add_argument("--retry-budget", metavar="SECONDS",
                        help=f"time to spend retrying 429/5xx/network errors (default {DEFAULT_RETRY_BUDGET:g})")
    parser.add_argument("--timeout", metavar="SECONDS",
                        help=f"wait this long for one answer before retrying (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--check", action="store_true",
                        help="check the OAuth client's permissions and the queues and user named; change nothing")
    parser.add_argument("--env-file", metavar="PATH", help="read variables from PATH instead of ./.env")
    parser.add_argument("--json", action="store_true", help="print one JSON object per call on stdout")
    parser.add_argument("--output", metavar="FILE", help="also append the result lines to FILE, flushed line by line "
                        "(survives a kill, and a Ctrl-C that ends a | tee)")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="log each request and tracebacks")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="log errors only")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser.parse_args(argv)


def configure_logging(args: argparse.Namespace) -> None:
    """Log lines on stderr; when it is not a terminal (cron, 2>> run.log), each starts with its UTC time."""
    handler = logging.StreamHandler(sys.stderr)
    terminal = sys.stderr is not None and sys.stderr.isatty()
    formatter = logging.Formatter("transfer_call: %(message)s" if terminal else
                                  "%(asctime)s transfer_call: %(message)s", "%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.DEBUG if args.verbose else logging.ERROR if args.quiet else logging.INFO)
    # At INFO httpx logs every URL; keep it and httpcore quiet.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def open_output(path: str | None) -> Any:
    """The --output file, opened to append (created when missing), or None."""
    if path is None:
        return None
    try:
        return open(path, "a", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot open --output {path}: {exc.strerror}; fix the path or its permissions") from None


def exit_status(calls: list[Call], stop: Stop) -> tuple[int, str | None]:
    """The run's exit code from its calls' outcomes, and the error line that explains it (None: nothing to say).

    0 when every call is done; 8 when something was (or may have been) changed but not all was
    done or confirmed; otherwise nothing was changed, and the code is the cause's: the signal,
    the error that halted the run, or the calls' first error.
    """
    unfinished = [c for c in calls if not c.done]
    changed = any(c.changed for c in calls)
    gone = [c for c in calls if isinstance(c.error, NoLiveCall)]
    if not unfinished and stop.error is not None:  # every call done, but the run could not keep its record
        return (ExitCode.PARTIAL if changed else stop.error.exit_code), f"the run stopped early: {stop.error}"
    if not unfinished:
        if calls and len(gone) == len(calls) and not changed:  # the one call (or every call) was gone
            return ExitCode.NO_LIVE_CALL, str(gone[0].error)
        return ExitCode.OK, None
    first = next((c for c in unfinished if c.error is not None or c.reason), unfinished[0])
    if len(calls) == 1 and first.moved == "yes" and first.routing == "failed":
        detail = (f"conversation {first.conversation_id} moved to queue {first.queue_name or first.queue_id}"
                  f"{' and was verified there' if first.verified else ''}, but its "
                  f"{' and '.join(f.words for f in ROUTING if f.key in first.plan.routing)} did not change: "
                  f"{first.routing_reason}")
    elif len(calls) == 1:
        detail = f"conversation {first.conversation_id} {first.status}: {first.reason or first.error}"
    else:
        kinds = collections.Counter("moved, not confirmed" if c.moved == "yes" else c.status for c in unfinished)
        detail = (f"{plural(len(unfinished), 'call')} not done ({', '.join(f'{n} {kind}' for kind, n in kinds.items())}"
                  f"; see the result lines)" + (f"; the run stopped early: {stop.error}" if stop.error else ""))
    if changed:
        unrouted = sum(1 for c in calls if c.moved == "yes" and c.routing == "failed")
        return ExitCode.PARTIAL, f"{detail}; something was changed: " + (
            f"{plural(unrouted, 'call')} moved without the routing change: to set it where they wait and act on the "
            "rest, run --conversations-file on this run's result lines with the same target and routing flags"
            if unrouted else "a rerun of the same command, or on this run's result lines, acts only on what is left")
    if stop.signalled:
        return stop.exit_code, None
    cause = stop.error or first.error
    return (cause.exit_code if cause else ExitCode.REFUSED), detail


def exit_decision(calls: list[Call] | None, stop: Stop, error: BaseException | None, *, changed: bool,
                  following: bool = False, tally: str = "") -> tuple[int, str | None, bool]:
    """The run's exit code, the line that explains it (None: nothing to say) and whether that line is an error.

    The one place a run's code is chosen: from its calls (exit_status) when it ran to its end, else from the
    error that ended it (each TransferCallError carries its code); 8 whenever something was (or may have
    been) changed and not all was done.
    """
    if isinstance(error, Stopped):
        if changed:
            return ExitCode.PARTIAL, f"{error.reason}; something was changed: read the result lines, then run it " \
                "again", False
        return error.exit_code, f"{error.reason} before anything was changed; nothing was sent", False
    if isinstance(error, TransferCallError):
        if changed:
            return ExitCode.PARTIAL, f"{error}; something was changed before it: read the result lines", True
        return error.exit_code, str(error), True
    if isinstance(error, KeyboardInterrupt):  # raised only while nothing can have been sent (Stop.preparing)
        return stop.exit_code or ExitCode.INTERRUPTED, f"{stop.reason if stop.signalled else 'interrupted'} " \
            "before anything was changed; nothing was sent", False
    if error is not None:
        return ExitCode.PARTIAL if changed else ExitCode.UNEXPECTED, \
            f"unexpected error: {type(error).__name__}: {error}", False
    code, message = exit_status(calls or [], stop)
    if following and code == ExitCode.NO_LIVE_CALL:  # calls gone before their turn, in a window run out
        code, message = ExitCode.OK, None
    if following and stop.signalled:  # the window was cut short: not all was done
        code = ExitCode.PARTIAL if changed else stop.exit_code
        message = (f"{message}; " if message else "" if changed else "nothing was changed; ") + \
            "the calls that arrive from now on are not moved: run it again to go on following"
    if stop.signalled and code != ExitCode.OK:
        return code, f"{stop.reason} ({tally}); {message or 'nothing was changed; run it again'}", False
    return code, message, True


def main(argv: list[str] | None = None) -> int:
    stop, args, report, org, calls, error, ran = Stop(), None, None, None, None, None, True
    # Signals only set the stop flag (see Stop): no request is sent after one, whatever was running.
    handlers = {}
    if threading.current_thread() is threading.main_thread():  # a signal ignored (nohup) stays ignored
        handlers = {number: signal.signal(number, stop.handle) for number in STOP_SIGNALS
                    if signal.getsignal(number) != signal.SIG_IGN}
    json_asked = "--json" in (sys.argv[1:] if argv is None else argv)  # before the flags are parsed: their errors too
    try:
        configure_logging(argparse.Namespace(verbose=False, quiet=False))
        try:
            args = parse_args(argv)
        except SystemExit as done:  # --help or --version printed: no run, so nothing to say and no summary record
            ran = False
            return int(done.code or 0)
        configure_logging(args)
        settings = resolve_settings(args, os.environ)
        report = Report(args.json, output=open_output(settings.output), stop=stop)
        log.info("org: %s%s, OAuth client %s", settings.base_url,
                 f" (region {settings.region})" if settings.region else "", settings.client_id)
        org = make_org(settings, stop=stop)
        report.transport = org.transport
        authenticate(org, settings)
        calls = run_check(org, settings, report) if settings.check else run(org, settings, report, stop)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - the one place errors become exit codes
        error = exc
        if not isinstance(exc, (TransferCallError, KeyboardInterrupt)):
            log.debug("unexpected error", exc_info=True)
    finally:
        stop.preparing = False  # a signal now must not interrupt the clean-up
        if ran:
            code, message, is_error = exit_decision(
                calls, stop, error, changed=report is not None and report.changed,
                following=bool(args and args.follow), tally=report.tally() if report is not None else "")
            if code == ExitCode.NO_LIVE_CALL:  # "no call to move" is an outcome, not an error: -q silences it
                log.info("%s", message)
            elif message:
                log.error("%s%s%s", "error: " if is_error else "", message,
                          " (run with -v for the traceback)" if message.startswith("unexpected error") else "")
        if org is not None:
            org.close()
        if ran and (args.json if args is not None else json_asked):
            (report or Report(True, stop=stop)).end(code, message)  # the run's last stdout line, whatever happened
        if report is not None:
            report.close()
        starting = globals().get("stopped_while_starting")  # defined when run as a script
        for number, previous in handlers.items():  # not the start-up handler: the run is over, its code stands
            signal.signal(number, signal.SIG_IGN if starting is not None and previous is starting else previous)
    return code


if __name__ == "__main__":
    sys.exit(main())
