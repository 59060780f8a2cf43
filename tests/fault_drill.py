"""The fault drill: transfer_call.py run as a user runs it, against a fake org that misbehaves.

Each case serves a fresh org on 127.0.0.1, breaks it in one way, runs the script as a subprocess,
and checks the exit code, the one-line message, the org afterwards, that no call was transferred
twice, that neither the client secret nor any issued token appears in stdout or stderr, and that
the run ended within its retry budget plus a margin.

    python tests/fault_drill.py        # runs every case, prints a line each and the figures
"""

from __future__ import annotations

import base64
import collections
import concurrent.futures
import dataclasses
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_org import Scenario, build_scenario, script_environment, serve  # noqa: E402

SCRIPT = Path(__file__).resolve().parent.parent / "transfer_call.py"
BUDGET = 2.5        # GENESYS_RETRY_BUDGET of every case
TIMEOUT = 1.0       # GENESYS_TIMEOUT of every case
# A safety net, not a measurement: start-up, settle time and verification take a few seconds on a
# quiet machine; a busy 2-core one may be several times slower, and that must not fail a case.
MARGIN = 60.0
NOWHERE = "api.nowhere.example"  # the DNS-failure case makes lookups of this domain (api., login.) fail, offline


@dataclasses.dataclass
class Case:
    name: str
    argv: list[str]
    code: int
    message: str                                  # in the one error line, or in stdout when code is 0
    setup: Callable[[Scenario], None] | None = None
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    transfers: int | None = None                  # transfers the org accepted, when it matters
    state: Callable[[Scenario], bool] | None = None    # anything else the org must show afterwards
    host: str | None = None                       # GENESYS_API_HOST instead of the served org
    dns_fails: bool = False


@dataclasses.dataclass
class Outcome:
    case: Case
    problems: list[str]
    duplicated: int
    leaked: bool
    over_time: bool
    seconds: float


# --- ways to break the org -------------------------------------------------------------------

ENDPOINTS = {  # (method, path pattern) a single transfer by --user-id / --queue-name touches
    "token": ("POST", r"^/oauth/token$"),
    "details query": ("POST", r"/analytics/conversations/details/query$"),
    "conversation read": ("GET", r"^/api/v2/conversations/[^/]+$"),
    "queue lookup": ("GET", r"^/api/v2/routing/queues$"),
    "transfer": ("POST", r"/replace/queue$"),
}
CHANGES = {  # the PATCHes of a move with routing flags and participant data
    "routing change": ("PATCH", r"^/api/v2/routing/conversations/[^/]+$"),
    "participant data": ("PATCH", r"/participants/[^/]+/attributes$"),
}
ROUTED = ["--user-id", "{agent}", "--queue-name", "Billing Overflow", "--priority", "7", "--attribute",
          "transferReason=drill"]
BY_AGENT = ["--user-id", "{agent}", "--queue-name", "Billing Overflow"]
WAITING = ["--conversation-id", "{waiting}", "--queue-id", "{billing}"]


def fault(endpoint: str, status: int = 503, **options: Any) -> Callable[[Scenario], None]:
    method, path = {**ENDPOINTS, **CHANGES}[endpoint]
    return lambda ids: ids.org.inject(method, path, status, **options)


def when(endpoint: str, action: Callable[[Scenario], None]) -> Callable[[Scenario], None]:
    method, path = ENDPOINTS[endpoint]
    return lambda ids: ids.org.when(method, path, lambda org: action(ids))


def moved_once(ids: Scenario) -> bool:
    return ids.org.queue_of(ids.agent_call) == ids.billing and len(ids.org.transfers) == 1


def moved_and_routed(ids: Scenario) -> bool:
    routing = ids.org.routing_of(ids.agent_call) or {}
    return moved_once(ids) and routing.get("priority") == 7 and ids.org.attributes_of(ids.agent_call) == {
        "transferReason": "drill"}


def nothing_sent(ids: Scenario) -> bool:
    return ids.org.requests == []


def ended_during_verification(ids: Scenario) -> None:
    ids.org.transfer_delay = 60
    sent: list[int] = []
    ids.org.when("POST", r"/replace/queue$", lambda org: sent.append(1))
    ids.org.when("GET", r"^/api/v2/conversations/", lambda org: sent and org.end_call(ids.agent_call), times=None)


def delete_target_queue(ids: Scenario) -> None:
    ids.org.when("POST", r"/replace/queue$", lambda org: org.queues.pop(ids.billing))


def decorate_conversations(ids: Scenario) -> None:
    for conversation in ids.org.conversations.values():
        conversation["futureField"] = {"nested": [1, 2]}
        for participant in conversation["participants"]:
            participant["anotherNewField"] = "x"
            participant["calls"][0]["brandNew"] = True


def strip_optional_fields(ids: Scenario) -> None:
    for conversation in ids.org.conversations.values():
        conversation.pop("recordingState", None)
        for participant in conversation["participants"]:
            for key in ("queueName", "connectedTime", "name", "attributes", "wrapupRequired", "address"):
                participant.pop(key, None)
            for call in participant["calls"]:
                for key in ("held", "muted", "confined", "recording", "connectedTime", "self", "initialState"):
                    call.pop(key, None)


def busy_bulk(ids: Scenario) -> None:
    calls = [ids.org.add_waiting_call(ids.support) for _ in range(14)]
    ids.org.when("POST", f"/conversations/{calls[2]}/participants", lambda org: org.answer(calls[2], ids.agent))
    ids.org.inject("POST", f"/conversations/{calls[5]}/participants", 503, process=True)
    ids.org.inject("POST", r"/replace/queue$", 429, retry_after=1)


def bulk_moved_each_once(ids: Scenario) -> bool:
    waiting = [c for c, conv in ids.org.conversations.items() if c != ids.agent_call]
    counts = collections.Counter(t["conversationId"] for t in ids.org.transfers)
    return all(counts[c] == 1 and ids.org.queue_of(c) == ids.billing
               for c in waiting if ids.org.live_participants(c, "agent") == [])


HTML = "<html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>"

CASES: list[Case] = [
    # --- rate limits: 429 was never processed, so it is resent after Retry-After, within the budget
    Case("429 storm with Retry-After outlasts the budget", BY_AGENT, 6, "rate limited (429)",
         fault("conversation read", 429, times=None, retry_after=1), transfers=0),
    Case("429 storm without Retry-After (a proxy) outlasts the budget", BY_AGENT, 6, "rate limited (429)",
         fault("conversation read", 429, times=None), transfers=0),
    Case("Retry-After longer than the budget ends at once, saying the wait", BY_AGENT, 6,
         "the next wait would have been 120.0s", fault("details query", 429, times=None, retry_after=120),
         transfers=0),
    Case("one 429 with Retry-After, then success", BY_AGENT, 0, "verified)",
         fault("transfer", 429, retry_after=1), state=moved_once),
    Case("one 429 without Retry-After, then success", BY_AGENT, 0, "verified)",
         fault("details query", 429), state=moved_once),
    # --- 5xx on every endpoint, once: reads are retried; the transfer is checked before it is resent
    *[Case(f"{status} once on the {endpoint}", BY_AGENT, 0, "verified)", fault(endpoint, status),
           state=moved_once) for endpoint in ENDPOINTS for status in (500, 502, 503, 504)],
    # --- 503 on every endpoint, without end
    *[Case(f"503 on every {endpoint} request", BY_AGENT, 6, "try again later",
           fault(endpoint, 503, times=None), transfers=0) for endpoint in ENDPOINTS if endpoint != "transfer"],
    # two transfer requests without a clear answer: either may have been processed, so no third (exit 8)
    Case("503 on every transfer request", BY_AGENT, 8, "still waits where it was: not sent again",
         fault("transfer", 503, times=None), transfers=0),
    # --- network faults
    Case("read timeout once on a conversation read", BY_AGENT, 0, "verified)",
         fault("conversation read", action="timeout", delay=TIMEOUT + 1), state=moved_once),
    Case("read timeouts outlast the budget", BY_AGENT, 6, "timed out",
         fault("details query", action="timeout", delay=TIMEOUT + 1, times=None), transfers=0),
    Case("connection dropped mid-response once", BY_AGENT, 0, "verified)",
         fault("conversation read", action="drop"), state=moved_once),
    Case("transfer processed but answered 504", BY_AGENT, 0, "verified)",
         fault("transfer", 504, process=True), state=moved_once),
    Case("transfer processed but the connection dropped", BY_AGENT, 0, "verified)",
         fault("transfer", process=True, action="drop"), state=moved_once),
    Case("transfer processed but its answer timed out", BY_AGENT, 0, "verified)",
         fault("transfer", process=True, action="timeout", delay=TIMEOUT + 1), state=moved_once),
    Case("token expires mid-run and is renewed once", BY_AGENT, 0, "verified)",
         when("transfer", lambda ids: ids.org.expire_tokens()),
         state=lambda ids: moved_once(ids) and len(ids.org.issued_tokens) == 2),
    Case("DNS failure of a bad GENESYS_API_HOST", BY_AGENT, 6,  # the token goes to the login. host of the API's
         f"cannot reach {NOWHERE.replace('api.', 'login.')}: network error (ConnectError",
         host=f"https://{NOWHERE}", dns_fails=True),
    Case("connection refused", BY_AGENT, 6, "network error (ConnectError", host="closed"),
    Case("a wrong host is reported in seconds, not after the whole budget", BY_AGENT, 6, "cannot reach",
         host="closed", env={"GENESYS_RETRY_BUDGET": "600"}),
    # --- the call changes under us
    Case("call answered between lookup and transfer", WAITING, 4, "answered or ended before the transfer",
         when("transfer", lambda ids: ids.org.answer(ids.waiting_call, ids.agent)), transfers=0),
    Case("call ended between lookup and transfer", BY_AGENT, 4, "answered or ended before the transfer",
         when("transfer", lambda ids: ids.org.end_call(ids.agent_call)), transfers=0),
    Case("participant disconnects during verification", BY_AGENT, 0, "the call ended before it was seen in queue",
         ended_during_verification, transfers=1),
    Case("target queue deleted between lookup and transfer", BY_AGENT, 2, "does not exist or is not visible",
         delete_target_queue, transfers=0),
    Case("analytics still lists a call that ended", BY_AGENT, 4, "has no connected voice call",
         lambda ids: (ids.org.end_call(ids.agent_call), ids.org.stale_in_analytics.add(ids.agent_call)),
         transfers=0),
    Case("analytics has not seen the call yet", BY_AGENT, 4, "has no connected voice call",
         lambda ids: ids.org.hidden_from_analytics.add(ids.agent_call), transfers=0),
    Case("transfer refused with an unexpected 400", BY_AGENT, 5, "Genesys Cloud answered 400 bad.request",
         fault("transfer", 400, body={"status": 400, "code": "bad.request", "message": "nope"}), transfers=0),
    Case("transfer accepted but never seen in the queue", [*BY_AGENT, "--wait", "0.5"], 8,
         "not seen in queue Billing Overflow within 0.5s", lambda ids: setattr(ids.org, "transfer_delay", 60), transfers=1),
    # --- what the server says is odd
    Case("malformed JSON once", BY_AGENT, 0, "verified)",
         fault("conversation read", 200, body="{not json", headers={"Content-Type": "application/json"}),
         state=moved_once),
    Case("malformed JSON on every read", BY_AGENT, 6, "without valid JSON",
         fault("details query", 200, body="{not json", times=None), transfers=0),
    Case("HTML error page from a proxy once", BY_AGENT, 0, "verified)",
         fault("details query", 502, body=HTML, headers={"Content-Type": "text/html"}), state=moved_once),
    Case("HTML error page from a proxy on every request", BY_AGENT, 6, "HTTP 502",
         fault("details query", 502, body=HTML, times=None, headers={"Content-Type": "text/html"}), transfers=0),
    Case("HTML 403 page from a proxy", BY_AGENT, 3, "permission denied",
         fault("queue lookup", 403, body=HTML, headers={"Content-Type": "text/html"}), transfers=0),
    Case("unexpected extra fields in answers", BY_AGENT, 0, "verified)", decorate_conversations, state=moved_once),
    Case("optional fields missing from answers", BY_AGENT, 0, "verified)", strip_optional_fields,
         state=moved_once),
    # --- bad input: refused before anything is sent
    Case("malformed UUID", ["--user-id", "not-a-uuid", "--queue-id", "{billing}"], 2, "is not an id",
         state=nothing_sent),
    Case("path-like id", ["--conversation-id", "../../users/me", "--queue-id", "{billing}"], 2, "is not an id",
         state=nothing_sent),
    Case("empty flag", ["--user-id", "{agent}", "--queue-id", ""], 2, "is empty", state=nothing_sent),
    Case("unknown region", BY_AGENT, 2, "GENESYS_REGION 'moon-1' is unknown", env={"GENESYS_REGION": "moon-1"},
         host="", state=nothing_sent),
    Case("http:// to a non-loopback host", BY_AGENT, 2, "use https", host="http://api.example.com",
         state=nothing_sent),
    Case("conflicting flags", ["--user-id", "{agent}", "--from-queue", "Support", "--queue-id", "{billing}"], 2,
         "give only one of", state=nothing_sent),
    Case("unreadable .env", [*BY_AGENT, "--env-file", "/nonexistent/prod.env"], 2, "cannot read env file",
         state=nothing_sent),
    Case("bad numbers", [*BY_AGENT, "--wait", "-1"], 2, "--wait '-1' must be a number of seconds >= 0",
         env={"GENESYS_RETRY_BUDGET": "soon"}, state=nothing_sent),
    # --- bulk and preflight
    Case("bulk move through an answer, a 429 and a processed 503", ["--from-queue", "Support", "--queue-id",
                                                                   "{billing}", "--yes"], 0, "verified)",
         busy_bulk, state=bulk_moved_each_once),
    Case("--check with every permission", ["--check"], 0, "analytics:conversationDetail:view", transfers=0),
    Case("--check with a permission missing", ["--check"], 3, "lacks analytics:conversationDetail:view",
         lambda ids: ids.org.permissions.discard("analytics:conversationDetail:view"), transfers=0),
    Case("--check with the platform unreachable", ["--check"], 6, "network error", host="closed"),
    # --- routing and participant data: PATCHes set values, so they are retried like reads
    *[Case(f"{status} once on the {change}", ROUTED, 0, "routing applied", fault(change, status),
           state=moved_and_routed) for change in CHANGES for status in (500, 503)],
    Case("routing change refused after the move", ROUTED, 8, "but its priority did not change",
         lambda ids: ids.org.permissions.discard("routing:conversation:edit"), state=moved_once),
    Case("two live calls from the caller's number", ["--caller", "+1 555 0100", "--queue-id", "{billing}"], 2,
         "2 live calls are from +15550100", transfers=0),
]


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"  # nothing listens once the socket closes


def command(case: Case, argv: list[str]) -> list[str]:
    if not case.dns_fails:
        return [sys.executable, str(SCRIPT), *argv]
    # Name lookups of NOWHERE fail as a resolver would, without asking one: nothing leaves the machine.
    shim = ("import runpy, socket, sys\n"
            "real = socket.getaddrinfo\n"
            "def lookup(host, *args, **kwargs):\n"
            f"    if str(host).endswith({NOWHERE.removeprefix('api.')!r}):\n"
            "        raise socket.gaierror(socket.EAI_NONAME, 'Name or service not known')\n"
            "    return real(host, *args, **kwargs)\n"
            "socket.getaddrinfo = lookup\n"
            f"sys.argv = [{str(SCRIPT)!r}, *sys.argv[1:]]\n"
            f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n")
    return [sys.executable, "-c", shim, *argv]


def run_case(case: Case) -> Outcome:
    ids = build_scenario()
    if case.setup:
        case.setup(ids)
    org = ids.org
    with serve(org) as base_url, _home() as home:
        host = {None: base_url, "closed": closed_port_url()}.get(case.host, case.host)
        env = script_environment(org, host, **{"HOME": home, "GENESYS_RETRY_BUDGET": str(BUDGET),
                                               "GENESYS_TIMEOUT": str(TIMEOUT), **case.env})
        argv = [ids.fill(part) for part in case.argv]
        wait = float(argv[argv.index("--wait") + 1]) if "--wait" in argv else 10.0
        started = time.monotonic()
        done = subprocess.run(command(case, argv), capture_output=True, text=True, env=env, cwd=home,
                              stdin=subprocess.DEVNULL, timeout=BUDGET + wait + MARGIN + 30)
        seconds = time.monotonic() - started
    problems = []
    output = done.stdout + done.stderr
    if done.returncode != case.code:
        problems.append(f"exit {done.returncode}, expected {case.code}")
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    if case.code == 4:  # no call to act on is an outcome, not an error: said on the last line, without "error:"
        errors = done.stderr.splitlines()[-1:] if not errors else [*errors, "(an error line for exit 4)"]
    if case.code == 0:
        if errors or case.message not in done.stdout:
            problems.append(f"expected {case.message!r} on stdout and no error line")
    elif len(errors) != 1 or case.message not in errors[0]:
        problems.append(f"expected one error line with {case.message!r}, got {errors}")
    if case.transfers is not None and len(org.transfers) != case.transfers:
        problems.append(f"{len(org.transfers)} transfers accepted, expected {case.transfers}")
    if case.state and not case.state(ids):
        problems.append("the org is not in the expected state afterwards")
    secrets = [org.client_secret, *org.issued_tokens,
               base64.b64encode(f"{org.client_id}:{org.client_secret}".encode()).decode()]
    leaked = any(secret in output for secret in secrets)
    if leaked:
        problems.append("a secret or token appeared in the output")
    duplicated = sum(1 for n in collections.Counter(t["participantId"] for t in org.transfers).values() if n > 1)
    if duplicated:
        problems.append(f"{duplicated} participants transferred twice")
    over_time = seconds > BUDGET + wait + MARGIN
    if over_time:
        problems.append(f"took {seconds:.1f}s, more than the budget {BUDGET}s + wait {wait:g}s + margin {MARGIN}s")
    if problems:
        problems.append(f"stderr: {done.stderr.strip()[-600:]}")
    return Outcome(case, problems, duplicated, leaked, over_time, seconds)


class _home:
    """An empty HOME and working folder per case (the SDK reads ~/.genesyscloudpython)."""

    def __enter__(self) -> str:
        import tempfile

        self._dir = tempfile.TemporaryDirectory()
        return self._dir.name

    def __exit__(self, *exc: object) -> None:
        self._dir.cleanup()


def main() -> int:
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(run_case, CASES))
    for outcome in outcomes:
        mark = "ok  " if not outcome.problems else "FAIL"
        print(f"{mark} {outcome.seconds:5.1f}s  exit {outcome.case.code}  {outcome.case.name}")
        for problem in outcome.problems:
            print(f"       {problem}")
    failed = sum(1 for o in outcomes if o.problems)
    print(f"\ncases run: {len(outcomes)}, passed: {len(outcomes) - failed}, failed: {failed}, "
          f"transfers duplicated: {sum(o.duplicated for o in outcomes)}, "
          f"secrets leaked: {sum(o.leaked for o in outcomes)}, cases over time: {sum(o.over_time for o in outcomes)} "
          f"({time.monotonic() - started:.0f}s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
