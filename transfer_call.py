#!/usr/bin/env python3
"""Blind-transfer a live Genesys Cloud voice call to another queue, and check that it landed.

Find the call by agent (--user-id / --user-email) or by conversation (--conversation-id),
replace the agent's (or the waiting call's queue) participant with the target queue
(--queue-id / --queue-name) through POST /api/v2/conversations/{id}/participants/{id}/replace/queue,
then re-read the conversation until the call is seen waiting in the target queue. With
--from-queue, every voice call waiting in a queue moves, paced by the org's rate limit;
--check probes the OAuth client's permissions without changing anything.

Credentials come from GENESYS_CLIENT_ID and GENESYS_CLIENT_SECRET (an OAuth client-credentials
client); the org from GENESYS_REGION or GENESYS_API_HOST. Flags win over the environment, which
wins over a .env file. Exit codes: 0 done, 1 unexpected, 2 usage, 3 auth/permission,
4 nothing to transfer, 5 refused or not confirmed, 6 unavailable (retry later), 7 bulk partly
failed, 130 interrupted. See README.md.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime as dt
import enum
import functools
import importlib.util
import ipaddress
import json
import logging
import os
import random
import re
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: --help and configuration errors must answer at once
    import httpx

__version__ = "1.0.0"

log = logging.getLogger("transfer_call")

DEFAULT_REGION = "us-east-1"
DEFAULT_WAIT = 10.0
DEFAULT_RETRY_BUDGET = 60.0
CONNECT_TIMEOUT = 5.0
DEFAULT_TIMEOUT = 20.0       # read timeout of one request
POLL_INTERVAL = 0.5          # between verification reads of the conversation
ANALYTICS_RETRIES = 2        # extra details queries when analytics has not caught up yet
ANALYTICS_RETRY_DELAY = 1.5
SETTLE_TIME = 3.0            # how long to watch for an ambiguous transfer to take effect
DEFAULT_CONCURRENCY = 4
CONFIRM_ABOVE = 10           # a bulk run moving more calls than this needs a "yes"
PAGE_SIZE = 100              # the details query's largest page
PROGRESS_EVERY = 2.0         # seconds between progress lines of a bulk run
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
ENDED_CALL_STATES = frozenset({"disconnected", "terminated"})
TRANSFER_PATH = "/api/v2/conversations/{cid}/participants/{pid}/replace/queue"
SDK_PACKAGE = "PureCloudPlatformClientV2"

ENV_VARS = {
    "GENESYS_CLIENT_ID": "OAuth client id (client credentials grant)",
    "GENESYS_CLIENT_SECRET": "OAuth client secret",
    "GENESYS_REGION": f"org region, e.g. us-east-1, eu-west-1 or mypurecloud.ie (default {DEFAULT_REGION})",
    "GENESYS_API_HOST": "base URL replacing the region's host for token and API (https, or http on loopback)",
    "GENESYS_RETRY_BUDGET": f"seconds a run may spend retrying 429/5xx/network errors (default {DEFAULT_RETRY_BUDGET:g})",
    "GENESYS_TIMEOUT": f"seconds to wait for one answer before retrying (default {DEFAULT_TIMEOUT:g})",
    "TARGET_USER_ID": "agent whose connected call is moved (--user-id)",
    "TARGET_USER_EMAIL": "agent, by exact email (--user-email)",
    "TARGET_CONVERSATION_ID": "conversation to move (--conversation-id)",
    "TARGET_QUEUE_ID": "queue to move the call to (--queue-id)",
    "TARGET_QUEUE_NAME": "queue to move the call to, by exact name (--queue-name)",
    "SOURCE_QUEUE": "queue whose waiting calls all move, by id or exact name (--from-queue)",
}


class ExitCode(enum.IntEnum):
    OK = 0
    UNEXPECTED = 1
    USAGE = 2
    AUTH = 3
    NOTHING_TO_TRANSFER = 4
    REFUSED = 5
    UNAVAILABLE = 6
    PARTIAL = 7
    INTERRUPTED = 130


EXIT_CODE_HELP = """\
exit codes (retry?):
  0    transferred and verified, or the dry-run plan was found
  1    unexpected error (no; report it, rerun with -v for the traceback)
  2    usage or configuration error (no; fix the flags or variables)
  3    authentication failed or permission denied (no; fix the client or its role)
  4    nothing to transfer: no live call, not found, or the call ended first (no)
  5    transfer refused by Genesys Cloud or not confirmed within --wait (check the call first)
  6    Genesys Cloud unavailable, network error, or rate limited past the budget (yes, later)
  7    bulk run partly failed (rerun: moved calls are no longer in the source queue)
  130  interrupted (Ctrl-C)"""


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


class AuthError(TransferCallError):
    """Raised when the token is refused or the OAuth client's role lacks a permission."""

    exit_code = ExitCode.AUTH


class NothingToTransfer(TransferCallError):
    """Raised when there is no live call, the user, queue or conversation is unknown, or the call ended."""

    exit_code = ExitCode.NOTHING_TO_TRANSFER


class QueueNotFound(NothingToTransfer):
    """Raised when the target queue does not exist or is not visible to the OAuth client."""


class TransferRefused(TransferCallError):
    """Raised when Genesys Cloud refuses the transfer or it is not seen within --wait."""

    exit_code = ExitCode.REFUSED


class Unavailable(TransferCallError):
    """Raised when Genesys Cloud cannot be reached or keeps failing past the retry budget."""

    exit_code = ExitCode.UNAVAILABLE


class OutcomeUnknown(Unavailable):
    """Raised by the transport when a transfer POST got a 5xx or timed out: it may have been processed."""


# --- settings -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything a run needs, resolved once from flags, environment and .env."""

    client_id: str
    client_secret: str = dataclasses.field(repr=False)
    base_url: str
    user_id: str | None = None
    user_email: str | None = None
    conversation_id: str | None = None
    queue_id: str | None = None
    queue_name: str | None = None
    from_queue: str | None = None
    limit: int | None = None
    yes: bool = False
    concurrency: int = DEFAULT_CONCURRENCY
    dry_run: bool = False
    wait: float = DEFAULT_WAIT
    retry_budget: float = DEFAULT_RETRY_BUDGET
    timeout: float = DEFAULT_TIMEOUT
    check: bool = False
    output_json: bool = False


def read_env_file(path: str | None) -> dict[str, str]:
    """Read KEY=VALUE pairs from --env-file PATH, or ./.env when present; never touches os.environ."""
    if path is None:
        if not os.path.isfile(".env"):
            return {}
        path = ".env"
    try:
        with open(path, encoding="utf-8") as handle:
            handle.read(0)
    except OSError as exc:
        raise UsageError(f"cannot read env file {path}: {exc.strerror}; fix the path or its permissions") from None
    from dotenv import dotenv_values

    return {key: value for key, value in dotenv_values(path).items() if value is not None}


def region_hosts() -> dict[str, str]:
    """Map region names (us_east_1, ...) to API base URLs from the SDK's PureCloudRegionHosts.

    The module is loaded on its own: importing the SDK package would cost about 2 s.
    """
    spec = importlib.util.find_spec(SDK_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(f"{SDK_PACKAGE} is not installed; run: pip install -r requirements.txt")
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
    """Why GENESYS_API_HOST is unusable, or None; plain http is allowed only to a loopback host."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"GENESYS_API_HOST must be a URL such as https://api.mypurecloud.com, not {url!r}"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return f"GENESYS_API_HOST must be a base URL with no path, not {url!r}"
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        return (f"GENESYS_API_HOST {url!r} uses plain http to a non-loopback host; "
                "use https so credentials are not sent unencrypted")
    return None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_uuid(value: str) -> bool:
    """True for the canonical 8-4-4-4-12 hex form Genesys uses for every id."""
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def resolve_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    """Merge flags over environment over .env, check every value, and report all problems at once."""
    file_values = read_env_file(args.env_file)
    problems: list[str] = []

    def pick(flag_value: str | None, variable: str) -> str | None:
        if flag_value is not None:
            if not flag_value.strip():
                problems.append(f"the flag for {variable} is empty")
            return flag_value.strip() or None
        value = environ.get(variable) or file_values.get(variable) or ""
        return value.strip() or None

    client_id = pick(None, "GENESYS_CLIENT_ID")
    client_secret = pick(None, "GENESYS_CLIENT_SECRET")
    for name, value in (("GENESYS_CLIENT_ID", client_id), ("GENESYS_CLIENT_SECRET", client_secret)):
        if not value:
            problems.append(f"{name} is not set")

    api_host = pick(None, "GENESYS_API_HOST")
    region = pick(None, "GENESYS_REGION") or DEFAULT_REGION
    if api_host:
        problem = check_base_url(api_host)
        if problem:
            problems.append(problem)
        base_url = api_host.rstrip("/")
    else:
        hosts = region_hosts()
        base_url = region_base_url(region, hosts) or ""
        if not base_url:
            names = ", ".join(name.replace("_", "-") for name in hosts)
            problems.append(f"GENESYS_REGION {region!r} is unknown; use one of {names}")

    user_id = pick(args.user_id, "TARGET_USER_ID")
    user_email = pick(args.user_email, "TARGET_USER_EMAIL")
    conversation_id = pick(args.conversation_id, "TARGET_CONVERSATION_ID")
    queue_id = pick(args.queue_id, "TARGET_QUEUE_ID")
    queue_name = pick(args.queue_name, "TARGET_QUEUE_NAME")

    from_queue = pick(args.from_queue, "SOURCE_QUEUE")
    call_choices = [name for name, value in (("--user-id", user_id), ("--user-email", user_email),
                                             ("--conversation-id", conversation_id), ("--from-queue", from_queue))
                    if value]
    # --check needs neither: it probes what the chosen mode needs, or everything when none is chosen.
    if len(call_choices) > 1:
        problems.append(f"give only one of {' / '.join(call_choices)}")
    elif not call_choices and not args.check:
        problems.append("say which call to move: --user-id, --user-email or --conversation-id "
                        "(or --from-queue for every call waiting in a queue)")
    if queue_id and queue_name:
        problems.append("give only one of --queue-id / --queue-name")
    elif not queue_id and not queue_name and not args.check:
        problems.append("say where to move it: --queue-id or --queue-name")
    for flag, value in (("--user-id", user_id), ("--conversation-id", conversation_id), ("--queue-id", queue_id)):
        if value and not is_uuid(value):
            problems.append(f"{flag} {value!r} is not an id (expected a UUID such as 3fa85f64-5717-4562-b3fc-2c963f66afa6)")
    if user_email and "@" not in user_email:
        problems.append(f"--user-email {user_email!r} is not an email address")

    def seconds(flag_value: str | None, variable: str, default: float, minimum: float) -> float:
        text = pick(flag_value, variable)
        try:
            value = float(text) if text else default
            if not value >= minimum:  # also refuses nan
                raise ValueError
            return value
        except ValueError:
            problems.append(f"{variable} {text!r} must be a number of seconds >= {minimum:g}")
            return default

    retry_budget = seconds(args.retry_budget, "GENESYS_RETRY_BUDGET", DEFAULT_RETRY_BUDGET, 0)
    timeout = seconds(args.timeout, "GENESYS_TIMEOUT", DEFAULT_TIMEOUT, 0.1)
    if args.wait < 0:
        problems.append("--wait must be >= 0")
    if args.limit is not None and args.limit < 1:
        problems.append("--limit must be at least 1")
    if not 1 <= args.concurrency <= 16:
        problems.append("--concurrency must be from 1 to 16")
    if not from_queue and (args.limit is not None or args.yes):
        problems.append("--limit and --yes go with --from-queue")

    if problems:
        raise UsageError("; ".join(problems))
    return Settings(client_id=client_id, client_secret=client_secret, base_url=base_url,
                    user_id=user_id and user_id.lower(), user_email=user_email,
                    conversation_id=conversation_id and conversation_id.lower(),
                    queue_id=queue_id and queue_id.lower(), queue_name=queue_name,
                    from_queue=from_queue and (from_queue.lower() if is_uuid(from_queue) else from_queue),
                    limit=args.limit, yes=args.yes, concurrency=args.concurrency, dry_run=args.dry_run,
                    wait=args.wait, retry_budget=retry_budget, timeout=timeout, output_json=args.json,
                    check=args.check)


# --- pure helpers: picking participants, building requests, describing results -------------

def is_live(participant: Any) -> bool:
    """A participant that has not ended and holds a call that is not disconnected."""
    return participant.end_time is None and any(
        call.state not in ENDED_CALL_STATES for call in participant.calls or [])


def is_connected(participant: Any) -> bool:
    return participant.end_time is None and any(call.state == "connected" for call in participant.calls or [])


def is_held(participant: Any) -> bool:
    return any(call.held for call in participant.calls or [] if call.state == "connected")


def conversation_ended(conversation: Any) -> bool:
    """Ended when Genesys set endTime or no customer/external party is still on the line."""
    if conversation.end_time is not None:
        return True
    callers = [p for p in conversation.participants or [] if p.purpose in ("customer", "external")]
    return bool(callers) and not any(is_live(p) for p in callers)


def pick_agent_participant(conversation: Any, user_id: str) -> Any | None:
    """The agent participant of user_id whose call is connected; earlier, ended legs are skipped."""
    for participant in conversation.participants or []:
        if participant.purpose == "agent" and participant.user_id == user_id and is_connected(participant):
            return participant
    return None


def pick_participant_to_replace(conversation: Any) -> Any | None:
    """The connected agent participant if any, else the live acd participant of a call waiting in a queue."""
    participants = conversation.participants or []
    for participant in participants:
        if participant.purpose == "agent" and is_connected(participant):
            return participant
    for participant in participants:
        if participant.purpose == "acd" and is_live(participant):
            return participant
    return None


def newest_first(choices: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Order (conversation, participant) pairs: not held first, then most recently started."""
    epoch = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    return sorted(choices, key=lambda pair: (not is_held(pair[1]), pair[1].start_time or epoch), reverse=True)


def transfer_landed(conversation: Any, participant_id: str, queue_id: str) -> bool:
    """True once the replaced participant is gone and a live acd participant waits in the target queue."""
    replaced_gone = all(not is_live(p) for p in conversation.participants or [] if p.id == participant_id)
    in_target = any(p.purpose == "acd" and p.queue_id == queue_id and p.id != participant_id and is_live(p)
                    for p in conversation.participants or [])
    return replaced_gone and in_target


def describe_participants(conversation: Any) -> str:
    """A short account of who is on the call, for messages about what verification saw."""
    parts = []
    for p in conversation.participants or []:
        states = ",".join(call.state or "?" for call in p.calls or []) or "no call"
        where = f" queue {p.queue_id}" if p.queue_id else ""
        parts.append(f"{p.purpose}{where} {'ended' if p.end_time else states}")
    return "; ".join(parts) or "no participants"


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def details_query(dimensions: Mapping[str, str], now: dt.datetime, *, order: str,
                  page: int = 1, page_size: int = 25) -> dict[str, Any]:
    """An analytics details query for open conversations with an open voice segment matching `dimensions`.

    Shaped like Genesys' own "current conversation by user" Data Action; the interval only has
    to touch the day the call started, so the last 24 hours plus a minute of clock skew will do.
    """
    start, end = now - dt.timedelta(days=1), now + dt.timedelta(minutes=1)
    matches = [{"type": "dimension", "dimension": name, "operator": "matches", "value": value}
               for name, value in {**dimensions, "mediaType": "voice"}.items()]
    return {
        "interval": f"{iso(start)}/{iso(end)}",
        "order": order,
        "orderBy": "conversationStart",
        "paging": {"pageSize": page_size, "pageNumber": page},
        "conversationFilters": [{"type": "and", "predicates": [
            {"type": "dimension", "dimension": "conversationEnd", "operator": "notExists"}]}],
        "segmentFilters": [{"type": "and", "predicates": [
            *matches, {"type": "dimension", "dimension": "segmentEnd", "operator": "notExists"}]}],
    }


@dataclasses.dataclass(frozen=True)
class WaitingCall:
    """A call analytics shows waiting in a queue: its acd participant there, and since when."""

    conversation_id: str
    participant_id: str
    waiting_since: dt.datetime | None
    answered: bool


def waiting_calls(conversations: list[Any], queue_id: str) -> list[WaitingCall]:
    """The calls of a details-query answer whose acd leg has an open segment in queue_id."""
    found = []
    for conversation in conversations:
        if conversation.conversation_end is not None:
            continue
        leg, answered = None, False
        for participant in conversation.participants or []:
            open_segments = [segment for session in participant.sessions or [] if session.media_type == "voice"
                             for segment in session.segments or [] if segment.segment_end is None]
            if participant.purpose == "acd" and any(seg.queue_id == queue_id for seg in open_segments):
                leg = (participant.participant_id,
                       min((seg.segment_start for seg in open_segments if seg.segment_start), default=None))
            answered = answered or (participant.purpose == "agent" and bool(open_segments))
        if leg:
            found.append(WaitingCall(conversation.conversation_id, leg[0], leg[1], answered))
    return found


def transfer_body(queue_id: str) -> dict[str, str]:
    """TransferToQueueRequest: an unattended (blind) transfer is the API's default."""
    return {"queueId": queue_id}


def format_result(result: Mapping[str, Any], as_json: bool) -> str:
    """One stdout line for one call: plain text, or a JSON object with --json."""
    if as_json:
        return json.dumps(result, sort_keys=True)
    where = f"to queue {result['queueId']}"
    subject = f"{result['conversationId']} participant {result['participantId']} {where}"
    if result["status"] == "dry-run":
        waited = f" (waiting {result['waitingSeconds']}s)" if result.get("waitingSeconds") is not None else ""
        return f"dry-run {subject}{waited}: would send {result['request']}"
    if result["status"] == "transferred":
        return f"transferred {subject} ({'verified' if result['verified'] else 'not verified'})"
    return f"{result['status']} {subject}: {result.get('reason', '')}".rstrip(": ")


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
    - The transfer POST is different: after a 5xx or a timeout it may have been processed, so
      it raises OutcomeUnknown and the caller reads the conversation before deciding anything.
    - 401 on an API call: fetch a new token once and resend (tokens expire mid-run).
    The budget bounds the total time spent waiting to retry; past it the run ends with exit 6.
    """

    def __init__(self, client: httpx.Client, *, retry_budget: float,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.retry_budget = retry_budget
        self.sleep = sleep
        self.reauthenticate: Callable[[], str] | None = None
        self.requests_sent = 0
        self.rate_limited = 0
        self.retry_spent = 0.0
        self._lock = threading.Lock()
        # What the last inin-ratelimit-* headers said, less what was sent since: None = unknown.
        self._pace = threading.Condition(self._lock)
        self._remaining: int | None = None
        self._reset_at = 0.0
        self._in_flight = 0
        self._sent_seq = self._applied_seq = 0  # answers arrive out of order: apply only newer ones

    def request(self, options: Any) -> Response:
        import httpx

        sdk = load_sdk()
        path = urllib.parse.urlsplit(options.url).path
        is_token_request = path.endswith("/oauth/token")
        is_transfer = options.method == "POST" and path.endswith("/replace/queue")
        headers = dict(options.headers)
        reauthenticated = False
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            try:
                response = self._send(options, headers)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                # Resending could double an action only for the transfer POST: every other request
                # reads. A connect error or connect timeout means nothing reached Genesys at all.
                never_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
                if is_transfer and not never_sent:
                    raise OutcomeUnknown(f"the transfer request failed with {type(exc).__name__}; "
                                         "it may or may not have been processed") from None
                self._wait_to_retry(backoff(attempt), f"{options.method} {path}: {describe_network_error(exc)}",
                                    time.monotonic() - started)
                continue
            status = response.status_code
            log.debug("%s %s -> %d (%.0f ms)", options.method, path, status, (time.monotonic() - started) * 1000)
            if status == 401 and not is_token_request and not reauthenticated and self.reauthenticate:
                # A 401 is decided before the request is processed: resending cannot double it.
                reauthenticated = True
                headers["Authorization"] = f"Bearer {self.reauthenticate()}"
                continue
            if status == 429:  # Genesys: a 429 request was not processed, so it is safe to resend
                self._wait_to_retry(retry_after(response, attempt), f"{options.method} {path}: rate limited (429)",
                                    time.monotonic() - started)
                continue
            if is_transfer and status >= 500:
                raise OutcomeUnknown(f"the transfer request was answered {status}; "
                                     "it may or may not have been processed")
            if status in TRANSIENT_STATUSES:
                self._wait_to_retry(backoff(attempt), f"{options.method} {path}: HTTP {status}",
                                    time.monotonic() - started)
                continue
            if 200 <= status <= 205 and not is_transfer and not is_json(response.text):
                # A proxy's page or a cut-off body; Genesys always answers reads with JSON.
                self._wait_to_retry(backoff(attempt), f"{options.method} {path}: answered {status} without "
                                    "valid JSON", time.monotonic() - started)
                continue
            result = Response(response)
            if not 200 <= status <= 205:
                raise sdk.rest.ApiException(http_resp=result)
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
                log.debug("rate limit budget spent; pausing %.1fs", pause)
                self._pace.wait(pause)
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
                self._remaining = allowed - count - self._in_flight
                self._reset_at = time.monotonic() + reset
            self._pace.notify_all()

    def _wait_to_retry(self, delay: float, what: str, failed_attempt_time: float) -> None:
        with self._lock:
            spent = self.retry_spent + failed_attempt_time
            if spent + delay > self.retry_budget:
                raise Unavailable(f"{what}; gave up after {spent:.1f}s of retries (retry budget "
                                  f"{self.retry_budget:g}s; the next wait would have been {delay:.1f}s); "
                                  "try again later or raise GENESYS_RETRY_BUDGET")
            self.retry_spent = spent + delay
        log.info("%s; retrying in %.1fs", what, delay)
        self.sleep(delay)
        with self._pace:  # this request waited out the pause: it may go first (and wake the others)
            self._reset_at = min(self._reset_at, time.monotonic())
            self._pace.notify_all()


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


def describe_network_error(exc: Exception) -> str:
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    return f"network error ({type(exc).__name__}: {exc})"


# --- the SDK and the API calls -------------------------------------------------------------

@functools.cache
def load_sdk() -> Any:
    """Import the Genesys Cloud SDK on first use (it takes about 2 s) and silence its own logger."""
    import PureCloudPlatformClientV2 as sdk

    # The SDK's logger writes request headers (the bearer token) when a user's
    # ~/.genesyscloudpython/config turns it on; this tool must never log a token.
    logging.getLogger(SDK_PACKAGE).disabled = True
    return sdk


def make_api_client(settings: Settings, transport: httpx.BaseTransport | None = None,
                    sleep: Callable[[float], None] = time.sleep) -> Any:
    """An SDK ApiClient whose HTTP goes through our httpx Transport (tests pass a MockTransport)."""
    import httpx

    sdk = load_sdk()
    from PureCloudPlatformClientV2.abstract_http_client import AbstractHttpClient

    class HttpClient(AbstractHttpClient):
        def __init__(self, inner: Transport) -> None:
            super().__init__()
            self.transport = inner

        def request(self, options: Any) -> Response:
            return self.transport.request(options)

    timeout = httpx.Timeout(settings.timeout, connect=min(CONNECT_TIMEOUT, settings.timeout))
    # Loading the CA bundle takes ~30 ms; plain http (allowed only to loopback) never uses it.
    verify = urllib.parse.urlsplit(settings.base_url).scheme == "https"
    client = httpx.Client(transport=transport, timeout=timeout, verify=verify,
                          headers={"User-Agent": f"transfer_call/{__version__}"})
    api_client = sdk.ApiClient(host=settings.base_url)
    api_client.set_http_client(HttpClient(Transport(client, retry_budget=settings.retry_budget, sleep=sleep)))
    return api_client


def transport_of(api_client: Any) -> Transport:
    return api_client.get_http_client().transport


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


def api_error(exc: Any, action: str) -> TransferCallError:
    """Turn an ApiException that no caller handled into our exception, naming the fix."""
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
    if status == 404:
        return NothingToTransfer(f"{action}: not found ({message}){ref}", code=code)
    if status >= 500:
        return Unavailable(f"{action}: Genesys Cloud answered {status} {code}; try again later{ref}", code=code)
    return TransferRefused(f"{action}: Genesys Cloud answered {status} {code}: {message}{ref}", code=code)


def call(action: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one SDK method, turning its ApiException into our exceptions."""
    sdk = load_sdk()
    try:
        return method(*args, **kwargs)
    except sdk.rest.ApiException as exc:
        raise api_error(exc, action) from None


def authenticate(api_client: Any, settings: Settings) -> None:
    """Get a client-credentials token, and arrange for a new one when a 401 comes mid-run."""
    sdk = load_sdk()

    def fetch_token() -> str:
        try:
            api_client.get_client_credentials_token(settings.client_id, settings.client_secret)
        except sdk.rest.ApiException as exc:
            status, code, _, _ = error_details(exc)
            # Reworded, never echoed: the token endpoint's answer is not ours to print.
            if status in (400, 401, 403):
                raise AuthError(f"authentication failed (HTTP {status}{' ' + code if code else ''}); check GENESYS_CLIENT_ID "
                                "and GENESYS_CLIENT_SECRET, and that the OAuth client uses the Client "
                                "Credentials grant in this region", code=code) from None
            raise Unavailable(f"the token endpoint answered HTTP {status}; try again later", code=code) from None
        except (ValueError, KeyError):
            raise Unavailable("the token endpoint did not answer with a token; check GENESYS_API_HOST "
                              "or GENESYS_REGION") from None
        return api_client.access_token

    fetch_token()
    transport_of(api_client).reauthenticate = fetch_token


def find_user_by_email(api_client: Any, email: str) -> str:
    """The id of the one user whose email is exactly this one."""
    sdk = load_sdk()
    body = {"query": [{"type": "EXACT", "fields": ["email"], "value": email}]}  # UserSearchRequest
    found = call(f"looking up user {email}", sdk.UsersApi(api_client).post_users_search, body)
    ids = [user.id for user in found.results or [] if (user.email or "").lower() == email.lower()]
    if not ids:
        raise NothingToTransfer(f"no user has the email {email}; check the address, or use --user-id")
    return ids[0]


def queue_to_use(api_client: Any, queue_id: str | None, queue_name: str | None,
                 check: bool) -> tuple[str, str | None]:
    """(id, name) of a queue: looked up when named or when `check`; an id alone is taken as given (no name).

    Skipping the lookup saves a request, and a wrong id still ends the run clearly: the transfer
    answers conversations.error.queue.not.found before anything moves.
    """
    if queue_id and not check:
        return queue_id, None
    return resolve_queue(api_client, queue_id, queue_name)


def resolve_queue(api_client: Any, queue_id: str | None, queue_name: str | None) -> tuple[str, str]:
    """(id, name) of a queue, which must exist, be visible, and (by name) be unique."""
    sdk = load_sdk()
    routing = sdk.RoutingApi(api_client)
    if queue_id:
        queue = call(f"reading queue {queue_id}", routing.get_routing_queue, queue_id)
        return queue.id, queue.name
    listing = call(f"looking up queue {queue_name!r}", routing.get_routing_queues, name=queue_name, page_size=100)
    matches = [q for q in listing.entities or [] if (q.name or "").lower() == queue_name.lower()]
    if not matches:
        raise NothingToTransfer(f"no queue named {queue_name!r} is visible to this OAuth client; check the "
                                "name, or the divisions granted to the client's role")
    if len(matches) > 1:
        listed = ", ".join(f"{q.name} ({q.id})" for q in matches)
        raise UsageError(f"{len(matches)} queues are named {queue_name!r}: {listed}; use --queue-id")
    return matches[0].id, matches[0].name


def get_conversation(api_client: Any, conversation_id: str) -> Any:
    sdk = load_sdk()
    return call(f"reading conversation {conversation_id}",
                sdk.ConversationsApi(api_client).get_conversation, conversation_id)


def find_agent_call(api_client: Any, user_id: str) -> tuple[Any, Any]:
    """(conversation, agent participant) of the user's connected voice call.

    Analytics lists candidates (it can lag, or still list ended calls); the live conversation
    decides. With several live calls the connected, not held, most recent one wins.
    """
    sdk = load_sdk()
    analytics = sdk.AnalyticsApi(api_client)
    for attempt in range(ANALYTICS_RETRIES + 1):
        query = details_query({"userId": user_id}, dt.datetime.now(dt.timezone.utc), order="desc")
        found = call("querying analytics for the agent's calls",
                     analytics.post_analytics_conversations_details_query, query)
        candidates = [c.conversation_id for c in found.conversations or [] if c.conversation_end is None]
        live = []
        for conversation_id in candidates:
            try:
                conversation = get_conversation(api_client, conversation_id)
            except NothingToTransfer:
                continue  # analytics knew it, the conversation service no longer does
            participant = pick_agent_participant(conversation, user_id)
            if participant is not None:
                live.append((conversation, participant))
        if live:
            chosen, *others = newest_first(live)
            if others:
                log.warning("user %s has %d other live calls, not moved: %s", user_id, len(others),
                            ", ".join(c.id for c, _ in others))
            return chosen
        if attempt < ANALYTICS_RETRIES:
            log.info("no connected call found for user %s yet; asking analytics again in %.1fs",
                     user_id, ANALYTICS_RETRY_DELAY)
            time.sleep(ANALYTICS_RETRY_DELAY)
    raise NothingToTransfer(f"user {user_id} has no connected voice call; check the agent, or use --conversation-id")


def find_call(api_client: Any, settings: Settings) -> tuple[Any, Any]:
    """(conversation, participant to replace) for the call the settings name."""
    if settings.conversation_id:
        conversation = get_conversation(api_client, settings.conversation_id)
        if conversation_ended(conversation):
            raise NothingToTransfer(f"conversation {conversation.id} has ended; nothing to transfer")
        participant = pick_participant_to_replace(conversation)
        if participant is None:
            raise NothingToTransfer(f"conversation {conversation.id} has no agent on the call and is not waiting "
                                    f"in a queue ({describe_participants(conversation)})")
        return conversation, participant
    user_id = settings.user_id or find_user_by_email(api_client, settings.user_email)
    return find_agent_call(api_client, user_id)


def transfer_to_queue(api_client: Any, conversation_id: str, participant_id: str, queue_id: str) -> None:
    """Send the blind transfer exactly once, even when the first answer is lost.

    A 5xx or timeout on the POST leaves its outcome unknown. Sending it again blindly could
    move the call twice, so we watch the conversation for up to SETTLE_TIME: if the participant
    is replaced, it went through. Only if it is still live then do we send once more; a replaced
    participant answers that second POST with transfer.not.connected, which we read as success.
    """
    sdk = load_sdk()
    conversations = sdk.ConversationsApi(api_client)
    body = transfer_body(queue_id)
    action = f"transferring conversation {conversation_id}"
    for attempt in (1, 2):
        try:
            conversations.post_conversation_participant_replace_queue(conversation_id, participant_id, body)
            return
        except OutcomeUnknown as exc:
            if attempt == 2:
                raise Unavailable(f"{action}: no clear answer twice ({exc}); check the call, then try again "
                                  "later") from None
            log.warning("%s: %s; checking the conversation before deciding", action, exc)
            if participant_left(api_client, conversation_id, participant_id, SETTLE_TIME):
                return
            log.warning("%s: participant %s is still on the call; sending the transfer again", action, participant_id)
        except sdk.rest.ApiException as exc:
            if attempt == 2 and error_details(exc)[1] == "conversations.error.transfer.not.connected":
                return  # the first POST did go through: the participant is already replaced
            raise transfer_error(exc, action, queue_id) from None


def participant_left(api_client: Any, conversation_id: str, participant_id: str, settle_time: float) -> bool:
    """Watch the conversation for up to settle_time; True once participant_id is no longer live."""
    deadline = time.monotonic() + settle_time
    while True:
        conversation = get_conversation(api_client, conversation_id)
        if not any(is_live(p) for p in conversation.participants or [] if p.id == participant_id):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(min(POLL_INTERVAL, settle_time))


def transfer_error(exc: Any, action: str, queue_id: str) -> TransferCallError:
    """Our exception for a refused transfer POST, by the Genesys error code."""
    status, code, message, correlation = error_details(exc)
    ref = f" (correlation id {correlation})" if correlation else ""
    if code == "conversations.error.transfer.not.connected":
        return NothingToTransfer(f"{action}: the call was answered or ended before the transfer; nothing moved{ref}",
                                 code=code)
    if code == "conversations.error.queue.not.found":
        return QueueNotFound(f"{action}: queue {queue_id} does not exist or is not visible to this OAuth "
                             f"client; check --queue-id and the role's divisions{ref}", code=code)
    if status == 404:
        return NothingToTransfer(f"{action}: the conversation or participant is gone; the call ended{ref}", code=code)
    return api_error(exc, action)


def wait_for_transfer(api_client: Any, conversation_id: str, participant_id: str, queue_id: str,
                      wait: float) -> None:
    """Re-read the conversation until the call waits in the target queue, or raise after `wait` seconds.

    The transfer API answers 202 and works asynchronously, so the answer alone proves nothing.
    """
    deadline = time.monotonic() + wait
    pause = POLL_INTERVAL / 2  # the first read comes sooner: most transfers land within a moment
    while True:
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = POLL_INTERVAL
        conversation = get_conversation(api_client, conversation_id)
        if transfer_landed(conversation, participant_id, queue_id):
            return
        if conversation_ended(conversation):
            raise NothingToTransfer(f"conversation {conversation_id} ended before it reached queue {queue_id} "
                                    f"({describe_participants(conversation)})")
        if time.monotonic() >= deadline:
            raise TransferRefused(f"transfer of conversation {conversation_id} to queue {queue_id} was accepted "
                                  f"but not seen within {wait:g}s; last seen: {describe_participants(conversation)}; "
                                  "check the call before running again, or raise --wait")


def run_single(api_client: Any, settings: Settings, emit: Callable[[dict[str, Any]], None]) -> None:
    """Find the call, transfer it once, verify it; emit one result record (also on failure after the call is known)."""
    started = time.monotonic()
    queue_id, queue_name = queue_to_use(api_client, settings.queue_id, settings.queue_name, settings.dry_run)
    conversation, participant = find_call(api_client, settings)
    result: dict[str, Any] = {
        "conversationId": conversation.id, "participantId": participant.id, "queueId": queue_id,
        "queueName": queue_name, "fromQueueId": participant.queue_id, "userId": participant.user_id,
        "purpose": participant.purpose, "verified": False,
    }
    if participant.purpose == "acd" and participant.queue_id == queue_id:
        raise UsageError(f"conversation {conversation.id} is already waiting in queue {queue_id}; "
                         "choose another target queue")
    path = TRANSFER_PATH.format(cid=conversation.id, pid=participant.id)
    if settings.dry_run:
        emit({**result, "status": "dry-run", "request": f"POST {path} {json.dumps(transfer_body(queue_id))}"})
        return
    try:
        log.info("transferring conversation %s participant %s (%s) to queue %s",
                 conversation.id, participant.id, participant.purpose, queue_id)
        transfer_to_queue(api_client, conversation.id, participant.id, queue_id)
        result["status"] = "transferred"
        if settings.wait > 0:
            wait_for_transfer(api_client, conversation.id, participant.id, queue_id, settings.wait)
            result["verified"] = True
    except TransferCallError as exc:
        # Once the POST was accepted the call may well have moved: say "transferred", unverified.
        emit({**result, "status": result.get("status", "failed"), "reason": str(exc), "errorCode": exc.code,
              "elapsedMs": round((time.monotonic() - started) * 1000)})
        raise
    result["elapsedMs"] = round((time.monotonic() - started) * 1000)
    emit(result)


def list_waiting_calls(api_client: Any, queue_id: str) -> list[WaitingCall]:
    """Every voice call analytics shows waiting in queue_id, oldest first, across all pages."""
    sdk = load_sdk()
    analytics = sdk.AnalyticsApi(api_client)
    calls: dict[str, WaitingCall] = {}
    page = 1
    while True:
        query = details_query({"queueId": queue_id}, dt.datetime.now(dt.timezone.utc), order="asc",
                              page=page, page_size=PAGE_SIZE)
        found = call(f"listing the calls waiting in queue {queue_id}",
                     analytics.post_analytics_conversations_details_query, query)
        conversations = found.conversations or []
        for waiting in waiting_calls(conversations, queue_id):
            calls.setdefault(waiting.conversation_id, waiting)  # pages can shift while calls come and go
        if len(conversations) < PAGE_SIZE or page * PAGE_SIZE >= (found.total_hits or 0):
            return list(calls.values())
        page += 1


class Progress:
    """Counts of a bulk run, logged to stderr every PROGRESS_EVERY seconds with rate and time left."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.counts = {"transferred": 0, "skipped": 0, "failed": 0}
        self.started = self._logged = time.monotonic()
        self._lock = threading.Lock()

    def record(self, status: str) -> None:
        with self._lock:
            self.counts[status] += 1
            if time.monotonic() - self._logged >= PROGRESS_EVERY:
                self._logged = time.monotonic()
                log.info("%s", self.line())

    def line(self) -> str:
        done = sum(self.counts.values())
        elapsed = max(time.monotonic() - self.started, 1e-6)
        left = (self.total - done) * elapsed / done if done else 0
        return (f"moved {self.counts['transferred']}/{self.total}, skipped {self.counts['skipped']}, "
                f"failed {self.counts['failed']}; {done / elapsed * 60:.0f} calls/min; about {left:.0f}s left")


def confirm_bulk(count: int, source: str, target: str, settings: Settings, stdin: Any = None) -> None:
    """Ask before moving more than CONFIRM_ABOVE calls: on a terminal, or by --yes when there is none."""
    stdin = stdin or sys.stdin
    if count <= CONFIRM_ABOVE or settings.yes or settings.dry_run:
        return
    if not stdin.isatty():
        raise UsageError(f"this would move {count} calls from {source} to {target}; "
                         "pass --yes to confirm when not running on a terminal")
    sys.stderr.write(f"Move {count} waiting calls from {source} to {target}? [y/N] ")
    sys.stderr.flush()
    if stdin.readline().strip().lower() not in ("y", "yes"):
        raise UsageError("not confirmed; nothing was moved")


def move_waiting_call(api_client: Any, waiting: WaitingCall, queue_id: str) -> dict[str, Any]:
    """Transfer one waiting call; a call answered or ended before its turn is a skip, not a failure."""
    started = time.monotonic()
    result: dict[str, Any] = {"conversationId": waiting.conversation_id, "participantId": waiting.participant_id}
    try:
        transfer_to_queue(api_client, waiting.conversation_id, waiting.participant_id, queue_id)
        result.update(status="transferred")
    except TransferCallError as exc:
        if isinstance(exc, NothingToTransfer) and not isinstance(exc, QueueNotFound):
            result.update(status="skipped", reason="answered or ended before its turn", errorCode=exc.code)
        else:
            result.update(status="failed", reason=str(exc), errorCode=exc.code, error=exc)
    result["elapsedMs"] = round((time.monotonic() - started) * 1000)
    return result


def verify_moves(api_client: Any, moved: Mapping[str, str], queue_id: str, wait: float) -> dict[str, str]:
    """Check a batch of transfers; returns conversation id -> "verified", "ended" or "not seen".

    One listing of the target queue checks every call analytics already shows there (a few
    requests for hundreds of calls); only the calls it has not shown by the deadline are read
    one by one, since analytics can lag the live state by seconds.
    """
    outcome = {conversation_id: "not seen" for conversation_id in moved}
    deadline, pause = time.monotonic() + wait, POLL_INTERVAL / 2
    while True:  # no pause first: by the end of a batch, all but its last transfers have long landed
        for waiting in list_waiting_calls(api_client, queue_id):
            replaced = moved.get(waiting.conversation_id)
            if replaced is not None and waiting.participant_id != replaced:  # a new leg, not the one we moved
                outcome[waiting.conversation_id] = "verified"
        if "not seen" not in outcome.values() or time.monotonic() >= deadline:
            break
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause *= 2
    for conversation_id, participant_id in moved.items():
        if outcome[conversation_id] == "not seen":
            try:
                conversation = get_conversation(api_client, conversation_id)
            except NothingToTransfer:
                outcome[conversation_id] = "ended"
                continue
            if transfer_landed(conversation, participant_id, queue_id):
                outcome[conversation_id] = "verified"
            elif conversation_ended(conversation):
                outcome[conversation_id] = "ended"
    return outcome


def run_bulk(api_client: Any, settings: Settings, emit: Callable[[dict[str, Any]], None]) -> ExitCode:
    """Move every voice call waiting in the source queue to the target queue; returns the exit code."""
    started = time.monotonic()
    source_is_id = is_uuid(settings.from_queue)
    source_id, source_name = queue_to_use(api_client, settings.from_queue if source_is_id else None,
                                          None if source_is_id else settings.from_queue, settings.dry_run)
    target_id, target_name = queue_to_use(api_client, settings.queue_id, settings.queue_name, settings.dry_run)
    if source_id == target_id:
        raise UsageError(f"--from-queue and the target are the same queue ({source_name or source_id}); "
                         "choose another target")
    listed = list_waiting_calls(api_client, source_id)
    common = {"queueId": target_id, "queueName": target_name, "fromQueueId": source_id, "verified": False}
    target_name = target_name or target_id  # for messages
    now = dt.datetime.now(dt.timezone.utc)
    answered = [w for w in listed if w.answered]
    waiting = [w for w in listed if not w.answered][:settings.limit]
    for w in answered:
        emit({**common, "conversationId": w.conversation_id, "participantId": w.participant_id,
              "status": "skipped", "reason": "already with an agent"})
    if not waiting:
        if source_name is None:  # not looked up: is it empty, or not a queue at all?
            source_name = resolve_queue(api_client, source_id, None)[1]
        raise NothingToTransfer(f"no voice calls are waiting in queue {source_name} ({source_id})")
    source_name = source_name or source_id  # for messages
    if settings.dry_run:
        for w in waiting:
            path = TRANSFER_PATH.format(cid=w.conversation_id, pid=w.participant_id)
            waited = round((now - w.waiting_since).total_seconds()) if w.waiting_since else None
            emit({**common, "conversationId": w.conversation_id, "participantId": w.participant_id,
                  "status": "dry-run", "waitingSeconds": waited,
                  "request": f"POST {path} {json.dumps(transfer_body(target_id))}"})
        log.info("dry run: %d calls would move from %s to %s with %d requests; nothing was sent",
                 len(waiting), source_name, target_name, len(waiting))
        return ExitCode.OK
    confirm_bulk(len(waiting), source_name, target_name, settings)
    log.info("moving %d calls from %s to %s, %d at a time", len(waiting), source_name, target_name,
             settings.concurrency)
    results, interrupted = move_all(api_client, waiting, target_id, settings.concurrency)
    moved = {r["conversationId"]: r["participantId"] for r in results if r["status"] == "transferred"}
    if moved and settings.wait > 0 and not interrupted:
        by_conversation = {r["conversationId"]: r for r in results}
        for conversation_id, seen in verify_moves(api_client, moved, target_id, settings.wait).items():
            result = by_conversation[conversation_id]
            if seen == "verified":
                result["verified"] = True
            elif seen == "ended":
                result.update(status="skipped", reason="call ended while moving")
            else:
                result.update(reason=f"not seen in queue {target_name} within {settings.wait:g}s; check the call")
    for result in results:
        emit({**common, **{key: value for key, value in result.items() if key != "error"}})
    log_summary(results, started, transport_of(api_client))
    return bulk_exit_code(results, settings, interrupted)


def log_summary(results: list[dict[str, Any]], started: float, transport: Transport) -> None:
    counts = collections.Counter(r["status"] for r in results)
    verified = sum(1 for r in results if r.get("verified"))
    elapsed = time.monotonic() - started
    moved = counts["transferred"]
    log.info("done: moved %d (%d verified), skipped %d, failed %d in %.1fs (%.0f calls/min); %d requests "
             "(%.2f per moved call), %d answered 429", moved, verified, counts["skipped"], counts["failed"],
             elapsed, moved / elapsed * 60 if elapsed else 0, transport.requests_sent,
             transport.requests_sent / moved if moved else 0, transport.rate_limited)


def move_all(api_client: Any, waiting: list[WaitingCall], queue_id: str,
             concurrency: int) -> tuple[list[dict[str, Any]], bool]:
    """Transfer the calls, `concurrency` at a time; Ctrl-C stops new transfers and waits for those in flight.

    Auth errors, an unknown target queue and an exhausted retry budget stop the run too: every
    further call would fail the same way.
    """
    import concurrent.futures

    progress = Progress(len(waiting))
    stop = threading.Event()
    results: dict[int, dict[str, Any]] = {}

    def work(index: int, call_to_move: WaitingCall) -> None:
        if stop.is_set():
            return
        result = move_waiting_call(api_client, call_to_move, queue_id)
        if isinstance(result.get("error"), (AuthError, Unavailable, QueueNotFound)):
            stop.set()
        results[index] = result
        progress.record(result["status"])

    interrupted = False
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=concurrency)
    futures = [pool.submit(work, index, w) for index, w in enumerate(waiting)]
    try:
        while not all(f.done() for f in futures):
            concurrent.futures.wait(futures, timeout=0.2)
    except KeyboardInterrupt:
        interrupted = True
        stop.set()
        log.warning("interrupted: sending no new transfers, waiting for those in flight")
    pool.shutdown(wait=True, cancel_futures=True)
    for future in futures:
        if not future.cancelled() and future.exception():
            raise future.exception()
    why = "interrupted" if interrupted else "the run stopped after an earlier error"
    for index, w in enumerate(waiting):
        results.setdefault(index, {"conversationId": w.conversation_id, "participantId": w.participant_id,
                                   "status": "skipped" if interrupted else "failed", "reason": f"not sent: {why}"})
    return [results[i] for i in sorted(results)], interrupted


def bulk_exit_code(results: list[dict[str, Any]], settings: Settings, interrupted: bool) -> ExitCode:
    """0 when every call that could move did; 7 when some failed; a failure's own code when none moved."""
    if interrupted:
        return ExitCode.INTERRUPTED
    failed = [r for r in results if r["status"] == "failed"
              or (r["status"] == "transferred" and settings.wait > 0 and not r["verified"])]
    if not failed:
        return ExitCode.OK
    if any(r["status"] == "transferred" for r in results):
        return ExitCode.PARTIAL
    error = next((r["error"] for r in failed if r.get("error")), None)
    return error.exit_code if error else ExitCode.PARTIAL


NIL_ID = "00000000-0000-4000-8000-000000000000"  # no conversation, queue or user has this id


def check_permissions(api_client: Any, settings: Settings) -> list[dict[str, str]]:
    """Probe each permission the chosen mode needs (all, when none is chosen) without changing anything.

    Reads that need a permission answer 403 without it; reading an id that does not exist
    answers 404 when the permission is there. The transfer itself cannot be probed without
    sending a transfer, so it is reported "unknown".
    """
    sdk = load_sdk()
    mode_given = any((settings.user_id, settings.user_email, settings.conversation_id, settings.from_queue))
    needs_analytics = not mode_given or settings.user_id or settings.user_email or settings.from_queue
    routing, analytics = sdk.RoutingApi(api_client), sdk.AnalyticsApi(api_client)
    probes: list[tuple[str, str, Callable[[], Any] | None, str]] = [  # (permission, for, probe, note on 404)
        ("conversation:communication:view", "reading the call and verifying the transfer",
         lambda: sdk.ConversationsApi(api_client).get_conversation(NIL_ID), ""),
        ("conversation:communication:blindTransferQueue", "the transfer (or ...:blindTransfer)", None, ""),
    ]
    if needs_analytics:
        now = dt.datetime.now(dt.timezone.utc)
        last_minute = {**details_query({"mediaType": "voice"}, now, order="desc", page_size=1),
                       "interval": f"{iso(now - dt.timedelta(minutes=1))}/{iso(now)}"}
        probes.append(("analytics:conversationDetail:view", "finding an agent's call, listing a queue's calls",
                       lambda: analytics.post_analytics_conversations_details_query(last_minute), ""))
    probes.append(("routing:queue:view", "looking up and checking queues",
                   (lambda: routing.get_routing_queue(settings.queue_id)) if settings.queue_id else
                   (lambda: routing.get_routing_queues(name=settings.queue_name or "*", page_size=1)),
                   f"but queue {settings.queue_id} was not found: check the id and the role's divisions"))
    if not mode_given or settings.user_email:
        email = settings.user_email or "nobody@invalid.example"
        probes.append(("directory:user:view", "--user-email",
                       lambda: sdk.UsersApi(api_client).post_users_search(
                           {"query": [{"type": "EXACT", "fields": ["email"], "value": email}]}), ""))
    rows = []
    for permission, needed_for, probe, note_on_404 in probes:
        result, note = "unknown", "cannot be checked without sending a transfer"
        if probe is not None:
            try:
                probe()
                result, note = "ok", ""
            except sdk.rest.ApiException as exc:
                status, code, _, _ = error_details(exc)
                if status == 401:
                    raise api_error(exc, "checking permissions") from None
                result, note = {403: ("missing", f"{code}: add it to the OAuth client's role"),
                                404: ("ok", note_on_404)}.get(status, ("unknown", f"answered {status} {code}"))
        rows.append({"permission": permission, "neededFor": needed_for, "result": result, "note": note})
    return rows


def run_check(api_client: Any, settings: Settings) -> ExitCode:
    """Print the permission table; exit 3 when the role lacks any permission the mode needs."""
    rows = check_permissions(api_client, settings)
    print(format_check(rows, settings.output_json), flush=True)
    missing = [r["permission"] for r in rows if r["result"] == "missing"]
    if missing:
        raise AuthError(f"the OAuth client's role lacks {', '.join(missing)}; add "
                        f"{'it' if len(missing) == 1 else 'them'} and run --check again")
    return ExitCode.OK


def format_check(rows: list[dict[str, str]], as_json: bool) -> str:
    if as_json:
        return "\n".join(json.dumps(row, sort_keys=True) for row in rows)
    lines = [f"{'permission':<47}{'needed for':<50}result"]
    lines += [f"{r['permission']:<47}{r['neededFor']:<50}{r['result']}{'  (' + r['note'] + ')' if r['note'] else ''}"
              for r in rows]
    return "\n".join(lines)


# --- command line --------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    variables = "\n".join(f"  {name:<24}{meaning}" for name, meaning in ENV_VARS.items())
    parser = argparse.ArgumentParser(
        prog="transfer_call.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Blind-transfer a live Genesys Cloud voice call to another queue and verify it landed.",
        epilog=f"""\
examples:
  python transfer_call.py --user-id 6e5c2c1a-0f0e-4b5e-9d53-0c2b9f0a4d11 --queue-name "Billing Overflow"
  python transfer_call.py --conversation-id 1d6f... --queue-id 8c2e... --dry-run
  python transfer_call.py --user-email agent@example.com --queue-id 8c2e... --json
  python transfer_call.py --from-queue Support --queue-name "Billing Overflow" --dry-run

environment variables (flags win; then the environment; then .env):
{variables}

{EXIT_CODE_HELP}""")
    which = parser.add_argument_group("which call")
    which.add_argument("--user-id", help="agent whose connected call is moved")
    which.add_argument("--user-email", help="agent, found by exact email")
    which.add_argument("--conversation-id", help="conversation to move (agent-connected or waiting in a queue)")
    which.add_argument("--from-queue", metavar="ID_OR_NAME",
                       help="every voice call waiting in this queue (bulk move)")
    target = parser.add_argument_group("where to")
    target.add_argument("--queue-id", help="target queue id")
    target.add_argument("--queue-name", help="target queue, by exact name (must be unique)")
    parser.add_argument("--dry-run", action="store_true", help="find everything and print the request; change nothing")
    bulk = parser.add_argument_group("bulk moves (--from-queue)")
    bulk.add_argument("--limit", type=int, metavar="N", help="move at most N calls, oldest first")
    bulk.add_argument("--yes", action="store_true", help=f"confirm a move of more than {CONFIRM_ABOVE} calls "
                      "without a terminal prompt")
    bulk.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, metavar="N",
                      help=f"transfers in flight at once (default {DEFAULT_CONCURRENCY})")
    parser.add_argument("--wait", type=float, default=DEFAULT_WAIT, metavar="SECONDS",
                        help=f"how long to verify the transfer (default {DEFAULT_WAIT:g}; 0 = do not verify)")
    parser.add_argument("--retry-budget", metavar="SECONDS",
                        help=f"time to spend retrying 429/5xx/network errors (default {DEFAULT_RETRY_BUDGET:g})")
    parser.add_argument("--timeout", metavar="SECONDS",
                        help=f"wait this long for one answer before retrying (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--check", action="store_true",
                        help="check the OAuth client's permissions for the chosen mode (or all); change nothing")
    parser.add_argument("--env-file", metavar="PATH", help="read variables from PATH instead of ./.env")
    parser.add_argument("--json", action="store_true", help="print one JSON object per call on stdout")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="log each request and tracebacks")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="log errors only")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser.parse_args(argv)


def configure_logging(args: argparse.Namespace) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("transfer_call: %(message)s"))
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.DEBUG if args.verbose else logging.ERROR if args.quiet else logging.INFO)
    # At INFO httpx logs every URL; keep it and httpcore quiet.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args)

    def emit(result: dict[str, Any]) -> None:
        print(format_result(result, args.json), flush=True)

    try:
        settings = resolve_settings(args, os.environ)
        api_client = make_api_client(settings)
        authenticate(api_client, settings)
        if settings.check:
            return run_check(api_client, settings)
        if settings.from_queue:
            return run_bulk(api_client, settings, emit)
        run_single(api_client, settings, emit)
        return ExitCode.OK
    except TransferCallError as exc:
        log.error("error: %s", exc)
        return exc.exit_code
    except KeyboardInterrupt:
        log.error("interrupted; if a transfer was sent, check the call before running again")
        return ExitCode.INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the one place unexpected errors become exit 1
        log.error("unexpected error: %s: %s (run with -v for the traceback)", type(exc).__name__, exc,
                  exc_info=args.verbose)
        return ExitCode.UNEXPECTED


if __name__ == "__main__":
    sys.exit(main())
