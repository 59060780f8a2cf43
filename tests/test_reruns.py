"""Issue 15: reruns are idempotent, runs exclude each other, and requests go only to the org.

Each test asserts on what the org received and its state afterwards (org.transfers, org.queue_of,
org.requests), not only on exit codes. Result lines are read the way the spec says readers must:
the LAST line per conversation counts (a moved call can have two lines: accepted, then final).
"""

from __future__ import annotations

import collections
import contextlib
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import transfer_call
from conftest import Scenario, SCRIPT, run_script
from fake_org import FakeOrg, build_scenario, script_environment
from test_bulk import answered_but_listed_as_waiting, evacuation_org, transfers_per_call
from test_operations import start, wait_until

README = Path(__file__).resolve().parent.parent / "README.md"


# --- helpers ------------------------------------------------------------------------------------

def last_by_call(out: str) -> dict[str, dict]:
    """The last result line per conversation, JSON (--json) or text; text lines give status, id and the line."""
    last: dict[str, dict] = {}
    for line in out.splitlines():
        if not line.strip():
            continue
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("summary") is True:  # the run's closing record
                continue
        else:
            status, conversation_id = line.split()[:2]
            record = {"status": status, "conversationId": conversation_id, "line": line}
        last.pop(record["conversationId"], None)
        last[record["conversationId"]] = record
    return last


def reason_of(record: dict) -> str:
    return record.get("reason") or record.get("line", "")


def transfer_posts(org: FakeOrg) -> list[dict]:
    return org.sent("POST", "/replace/queue")


@contextlib.contextmanager
def recorder():
    """A tiny HTTP server on 127.0.0.1 that records every connection and request it gets (and answers 404)."""
    seen: list[tuple[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            seen.append((self.command, self.path))
            body = b'{"status": 404, "code": "not.found", "message": "recorder"}'
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_CONNECT = _any

        def log_message(self, *args) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def verify_request(self, request, client_address) -> bool:
            seen.append(("connection", str(client_address)))  # any connection at all, even one never used
            return True

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()


def arrive_together(org: FakeOrg, path_part: str, count: int, timeout: float = 5.0) -> threading.Barrier:
    """Hold the first `count` matching requests of an in-process org until all have arrived: they are answered
    at the same moment (the fake answers at once otherwise). run_inprocess builds its transport from org.handle."""
    barrier = threading.Barrier(count, timeout=timeout)
    arrived = []
    lock = threading.Lock()
    handle = org.handle

    def together(request):
        if path_part in request.url.path:
            with lock:
                first = len(arrived) < count
                arrived.append(request.url.path)
            if first:
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait()
        return handle(request)

    org.handle = together
    return barrier


# --- 1-4: reruns ---------------------------------------------------------------------------------

@pytest.mark.parametrize("as_json", [True, False], ids=["json-lines", "text-lines"])
def test_a_rerun_on_result_lines_after_the_call_was_answered_in_its_target_queue_sends_nothing(
        run_inprocess, tmp_path, as_json: bool) -> None:
    scenario = build_scenario()
    org, call = scenario.org, scenario.waiting_call
    json_flag = ["--json"] if as_json else []
    first = run_inprocess(org, "--conversation-id", call, "--queue-id", scenario.billing, *json_flag)
    assert first.code == 0, first.err
    assert len(org.transfers) == 1 and org.queue_of(call) == scenario.billing
    org.answer(call, scenario.agent)  # an agent answers it from Billing
    results = tmp_path / ("results.jsonl" if as_json else "results.txt")
    results.write_text(first.out)

    rerun = run_inprocess(org, "--conversations-file", str(results), "--queue-id", scenario.billing, *json_flag)

    assert rerun.code == 0, rerun.err
    assert len(org.transfers) == 1 and len(transfer_posts(org)) == 1  # no second transfer was even sent
    record = last_by_call(rerun.out)[call]
    assert record["status"] == "skipped"
    if as_json:
        assert record["moved"] == "no"
    assert re.search(r"done in the earlier run|already answered from queue", reason_of(record)), record
    assert org.live_participants(call, "agent")  # still with the agent who answered
    assert org.queue_of(call) is None


def test_a_skipped_with_an_agent_line_fed_back_is_done_in_the_earlier_run(run_inprocess, tmp_path) -> None:
    org, support, overflow, calls = evacuation_org(3)
    answered_but_listed_as_waiting(org, calls[0])
    first = run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow)
    assert first.code == 0, first.err
    earlier = last_by_call(first.out)
    assert earlier[calls[0]]["status"] == "skipped" and "already with an agent" in earlier[calls[0]]["line"]
    results = tmp_path / "results.txt"
    results.write_text(first.out)

    rerun = run_inprocess(org, "--conversations-file", str(results), "--queue-id", overflow, "--json")

    assert rerun.code == 0, rerun.err
    records = last_by_call(rerun.out)
    assert set(records) == set(calls)
    assert records[calls[0]]["status"] == "skipped" and records[calls[0]]["moved"] == "no"
    assert "done in the earlier run" in records[calls[0]]["reason"]
    assert transfers_per_call(org) == collections.Counter(calls[1:])  # from the first run only
    assert not [p for p in transfer_posts(org) if calls[0] in p["path"]]
    assert org.live_participants(calls[0], "agent")  # left with its agent


def test_the_same_command_twice_and_after_an_answer_in_the_target_queue_is_skipped(run_inprocess) -> None:
    scenario = build_scenario()
    org, call = scenario.org, scenario.waiting_call
    argv = ("--conversation-id", call, "--queue-id", scenario.billing, "--json")
    assert run_inprocess(org, *argv).code == 0

    again = run_inprocess(org, *argv)

    assert again.code == 0, again.err
    record = last_by_call(again.out)[call]
    assert (record["status"], record["moved"]) == ("skipped", "no")
    assert "already waiting in queue" in record["reason"]
    assert len(org.transfers) == 1 and len(transfer_posts(org)) == 1
    assert org.queue_of(call) == scenario.billing

    org.answer(call, scenario.agent)  # answered by an agent from the target queue
    answered = run_inprocess(org, *argv)

    assert answered.code == 0, answered.err
    record = last_by_call(answered.out)[call]
    assert (record["status"], record["moved"]) == ("skipped", "no")
    assert "already answered from queue" in record["reason"]
    assert len(org.transfers) == 1 and len(transfer_posts(org)) == 1
    assert org.live_participants(call, "agent")  # not taken from the agent


def test_undo_of_text_result_lines_puts_the_call_back(run_inprocess, tmp_path) -> None:
    scenario = build_scenario()
    org, call = scenario.org, scenario.waiting_call
    first = run_inprocess(org, "--conversation-id", call, "--queue-id", scenario.billing)  # text lines, no --json
    assert first.code == 0, first.err
    assert org.queue_of(call) == scenario.billing
    results = tmp_path / "moved.txt"
    results.write_text(first.out)

    undo = run_inprocess(org, "--undo", str(results), "--yes")

    assert undo.code == 0, undo.err
    assert [t["queueId"] for t in org.transfers] == [scenario.billing, scenario.support]  # one transfer back
    assert org.transfers[1]["conversationId"] == call
    assert org.queue_of(call) == scenario.support
    assert last_by_call(undo.out)[call]["status"] == "transferred"


# --- 5-8: what is read, and where requests go -------------------------------------------------

@pytest.mark.parametrize("field", ["conversationId", "fromQueueId", "queueId"])
def test_a_crafted_id_in_an_undo_file_is_refused_before_any_request(run_inprocess, tmp_path, field: str) -> None:
    scenario = build_scenario()
    org = scenario.org
    record = {"conversationId": scenario.waiting_call, "participantId": "0f5e3a52-7c1b-4d2e-9a8f-1b2c3d4e5f60",
              "purpose": "acd", "userId": None, "fromQueueId": scenario.support, "queueId": scenario.billing,
              "queueName": "Billing Overflow", "status": "transferred", "moved": "yes", "verified": True,
              "final": True, "elapsedMs": 512, "timestamp": "2026-01-05T10:00:00.000Z"}
    record[field] = "../../routing/queues/x"
    crafted = tmp_path / "moved.jsonl"
    crafted.write_text(json.dumps(record, sort_keys=True) + "\n")

    result = run_inprocess(org, "--undo", str(crafted), "--yes")

    assert result.code == 2, result.err
    assert org.requests == []  # not even a token request
    assert "routing/queues/x" not in result.out + result.err  # no message quotes a line of the file


@pytest.mark.parametrize("verbose", [[], ["-v"]], ids=["plain", "verbose"])
def test_a_dotenv_given_as_the_conversations_file_is_refused_without_quoting_the_secret(
        run_inprocess, tmp_path, verbose: list[str]) -> None:
    scenario = build_scenario()
    org = scenario.org
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"GENESYS_CLIENT_SECRET={org.client_secret}\nGENESYS_CLIENT_ID={org.client_id}\n")

    result = run_inprocess(org, "--conversations-file", ".env", "--queue-id", scenario.billing, *verbose)

    assert result.code == 2, result.err
    assert re.search(r"\blines? 1\b", result.err), result.err  # names the line by its number
    assert org.client_secret not in result.out + result.err
    assert "GENESYS_CLIENT_SECRET=" not in result.out + result.err
    assert org.transfers == [] and transfer_posts(org) == []


def test_a_gateway_in_the_sdk_config_is_ignored_and_gets_nothing(served, tmp_path) -> None:
    scenario = build_scenario()
    org = scenario.org
    base_url = served(org)
    with recorder() as (port, seen):
        config = tmp_path / ".genesyscloudpython" / "config"
        config.parent.mkdir()
        config.write_text(f"[gateway]\nhost = 127.0.0.1\nport = {port}\nprotocol = http\n")

        result = run_script(base_url, org, "--conversation-id", scenario.waiting_call, "--queue-id",
                            scenario.billing, env={"HOME": str(tmp_path)}, timeout=60)
        time.sleep(0.1)  # a connection just made would have been recorded by now

        assert seen == [], seen
    assert result.code == 0, result.err
    assert "gateway" in result.err
    token_requests = org.sent("POST", "/oauth/token")
    assert token_requests and all(r["authorization"].startswith("Basic ") for r in token_requests)
    assert len(org.transfers) == 1 and org.queue_of(scenario.waiting_call) == scenario.billing
    assert org.client_secret not in result.out + result.err


def test_proxy_variables_are_ignored_and_the_proxy_gets_nothing(served, monkeypatch) -> None:
    scenario = build_scenario()
    org = scenario.org
    base_url = served(org)
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)  # nothing may exempt 127.0.0.1 from the proxy
    with recorder() as (port, seen):
        proxy = f"http://127.0.0.1:{port}"

        result = run_script(base_url, org, "--conversation-id", scenario.waiting_call, "--queue-id",
                            scenario.billing, env={"HTTPS_PROXY": proxy, "HTTP_PROXY": proxy}, timeout=60)
        time.sleep(0.1)

        assert seen == [], seen
    assert result.code == 0, result.err
    assert "proxy" in result.err.lower()  # the notice that the variables are ignored
    assert org.sent("POST", "/oauth/token")
    assert len(org.transfers) == 1 and org.queue_of(scenario.waiting_call) == scenario.billing


@pytest.mark.parametrize("body", ["[]", "{}", '{"access_token": 5}', '{"access_token": ""}', "null"])
def test_a_token_answer_without_an_access_token_is_exit_6(run_inprocess, body: str) -> None:
    scenario = build_scenario()
    org = scenario.org
    org.inject("POST", "/oauth/token", 200, body=body, headers={"Content-Type": "application/json"}, times=None)

    result = run_inprocess(org, "--conversation-id", scenario.waiting_call, "--queue-id", scenario.billing)

    assert result.code == 6, result.err
    assert "token" in result.err and "Traceback" not in result.err
    assert org.transfers == []
    assert all(r["path"] == "/oauth/token" for r in org.requests)  # nothing else was tried without a token


# --- 9-10: budgets and routing in bulk --------------------------------------------------------

def test_four_parallel_429s_within_the_retry_budget_all_move(run_inprocess) -> None:
    org, support, overflow, calls = evacuation_org(4)
    org.inject("POST", "/replace/queue", 429, retry_after=2, times=4,
               body={"status": 429, "code": "too.many.requests.retry.after",
                     "message": "Rate limit exceeded the maximum. Retry the request in [2] seconds"})
    together = arrive_together(org, "/replace/queue", 4)  # the four 429s come at the same moment
    began = time.monotonic()

    result = run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--concurrency", "4",
                           "--retry-budget", "3", "--yes", "--json", real_sleep=True)

    assert not together.broken, "the four transfers were not in flight at once"
    assert result.code == 0, result.err
    assert transfers_per_call(org) == collections.Counter(calls)  # each moved exactly once
    assert len(transfer_posts(org)) == 8  # one 429 and one 202 each
    assert all(org.queue_of(c) == overflow for c in calls)
    records = last_by_call(result.out)
    assert {c: records[c]["status"] for c in calls} == {c: "transferred" for c in calls}
    assert time.monotonic() - began < 30


def test_a_refused_routing_change_in_bulk_stops_after_the_first_call(run_inprocess) -> None:
    org, support, overflow, calls = evacuation_org(5)
    org.permissions.discard("routing:conversation:edit")

    result = run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--priority", "50", "--yes",
                           "--json")

    assert result.code == 8, result.err
    assert len(org.transfers) == 1  # the first call moved; its routing change refused; nothing else sent
    assert len(transfer_posts(org)) == 1 and org.routing_changes == []
    [moved] = [t["conversationId"] for t in org.transfers]
    assert org.queue_of(moved) == overflow
    assert all(org.queue_of(c) == support for c in calls if c != moved)
    records = last_by_call(result.out)
    assert set(records) == set(calls)
    assert records[moved]["status"] == "transferred" and records[moved]["moved"] == "yes"
    assert records[moved]["routing"] == "failed"
    assert {c: (records[c]["status"], records[c]["moved"]) for c in calls if c != moved} == \
        {c: ("not-sent", "no") for c in calls if c != moved}


# --- 11-13: processes: signals, two runs at once, records that survive a kill ---------------

@pytest.mark.parametrize("delay, signum, codes", [
    (0.010, signal.SIGTERM, (143, -15)),
    (0.025, signal.SIGTERM, (143, -15)),
    (0.150, signal.SIGTERM, (143, -15)),
    # SIGINT while Python compiles the file (before its first statement) would be a KeyboardInterrupt
    # traceback: half a second in is past that even on a busy machine.
    (0.500, signal.SIGINT, (130,)),
], ids=["TERM-10ms", "TERM-25ms", "TERM-150ms", "INT-500ms"])
def test_a_signal_from_the_first_statement_ends_the_run_cleanly(served, delay: float, signum: int,
                                                                 codes: tuple[int, ...]) -> None:
    org, support, overflow, calls = evacuation_org(5, latency=0.4)  # nothing can be sent within 500 ms
    base_url = served(org)
    began = time.monotonic()
    process = start(base_url, org, "--from-queue", "Support", "--queue-id", overflow, "--yes")
    time.sleep(max(0.0, began + delay - time.monotonic()))
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)

    assert process.returncode in codes, err
    assert "Traceback" not in err
    assert org.transfers == [] and transfer_posts(org) == []
    assert all(org.queue_of(c) == support for c in calls)


@pytest.mark.parametrize("second_names_it", ["by name", "by id"])
def test_two_bulk_runs_of_one_queue_move_each_call_once_and_one_is_busy(served, second_names_it: str) -> None:
    org, support, overflow, calls = evacuation_org(30, latency=0.02)
    base_url = served(org)
    second_source = "Support" if second_names_it == "by name" else support
    first = start(base_url, org, "--from-queue", "Support", "--queue-id", overflow, "--yes", "--json")
    second = start(base_url, org, "--from-queue", second_source, "--queue-id", overflow, "--yes", "--json")
    (out1, err1), (out2, err2) = first.communicate(timeout=120), second.communicate(timeout=120)
    runs = [(first.returncode, out1, err1), (second.returncode, out2, err2)]

    assert transfers_per_call(org) == collections.Counter(calls)  # each moved exactly once, in every case
    assert all(org.queue_of(c) == overflow for c in calls)
    codes = sorted(code for code, _, _ in runs)
    # Which run sent what: every run has its own token.
    spans: dict[str, list[float]] = collections.defaultdict(list)
    for request in org.requests:
        if request["authorization"].startswith("Bearer "):
            spans[request["authorization"]].append(request["at"])
    senders = {r["authorization"] for r in transfer_posts(org)}
    if codes == [0, 7]:
        [(busy_out, busy_err, holder)] = [(out, err, other.pid) for (code, out, err), other
                                          in zip(runs, (second, first)) if code == 7]
        assert re.search(rf"\b{holder}\b", busy_err), busy_err  # names the run (its pid) that holds the lock
        assert not [r for r in last_by_call(busy_out).values() if r["status"] == "transferred"]
        assert len(senders) == 1  # the busy run sent no transfer at all
    else:  # only when the first had finished before the second looked: then it found nothing to move
        assert codes in ([0, 0], [0, 4]), runs
        assert len(spans) == 2
        (start_a, end_a), (start_b, end_b) = sorted((min(t), max(t)) for t in spans.values())
        assert end_a < start_b, "both runs acted at once, yet neither was refused with exit 7"
    for code, _, err in runs:
        assert "Traceback" not in err


def test_the_output_file_keeps_every_accepted_transfer_through_sigkill(served, tmp_path) -> None:
    org, support, overflow, calls = evacuation_org(40, latency=0.05)
    for call in calls:  # a moved call is not seen by analytics: its verification goes on until --wait
        org.when("POST", f"/conversations/{call}/participants",
                 lambda o, c=call: o.hidden_from_analytics.add(c))
    output = tmp_path / "results.jsonl"
    concurrency = 4
    process = start(served(org), org, "--from-queue", "Support", "--queue-id", overflow, "--yes", "--json",
                    "--concurrency", str(concurrency), "--wait", "60", "--output", str(output))
    wait_until(lambda: len(org.transfers) >= 5 or process.poll() is not None, 60)
    assert process.poll() is None, process.communicate()[1]  # still running: not refused at once
    process.kill()
    process.communicate(timeout=60)

    accepted = set(transfers_per_call(org))
    assert 5 <= len(accepted) < 40
    records = last_by_call(output.read_text())
    said_moved = {c for c, r in records.items() if r["moved"] == "yes"}
    assert said_moved <= accepted  # no line claims a move the org did not accept
    assert len(accepted - said_moved) <= concurrency  # lost: at most the transfers in flight


def test_the_output_file_keeps_every_accepted_transfer_when_ctrl_c_ends_a_tee(served, tmp_path) -> None:
    org, support, overflow, calls = evacuation_org(40, latency=0.05)
    output, copy, status = tmp_path / "results.jsonl", tmp_path / "copy.jsonl", tmp_path / "status"
    command = " ".join([f"'{sys.executable}'", f"'{SCRIPT}'", "--from-queue", "Support", "--queue-id", overflow,
                        "--yes", "--json", "--concurrency", "2", "--wait", "5", "--output", f"'{output}'"])
    # The shell traps SIGINT (its children get the default) so that it lives to record the script's exit code.
    shell = subprocess.Popen(["bash", "-c", f"trap : INT; {command} | tee '{copy}' >/dev/null; "
                              f"echo ${{PIPESTATUS[0]}} > '{status}'"],
                             env=script_environment(org, served(org)), stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    wait_until(lambda: len(org.transfers) >= 3 or shell.poll() is not None, 60)
    assert shell.poll() is None, shell.communicate()[1]  # still running: not refused at once
    os.killpg(shell.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group, tee included
    _, err = shell.communicate(timeout=60)

    code = int(status.read_text())
    accepted = set(transfers_per_call(org))
    assert code == (8 if accepted else 130), err
    assert 3 <= len(accepted) < 40
    records = last_by_call(output.read_text())
    assert {c for c, r in records.items() if r["moved"] == "yes"} == accepted  # a line for each accepted transfer
    assert "Traceback" not in err


# --- 14: the exit codes, documented alike in three places --------------------------------------

def readme_exit_codes() -> set[int]:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n| exit | meaning | retry? |\n", 1)[1].split("\n\n", 1)[0]
    return {int(m.group(1)) for m in re.finditer(r"^\|\s*(\d+)\s*\|", section, re.MULTILINE)}


def help_exit_codes() -> set[int]:
    return {int(m.group(1)) for m in re.finditer(r"^\s+(\d+)\s{2,}\S", transfer_call.EXIT_CODE_HELP, re.MULTILINE)}


def test_the_exit_codes_agree_in_the_readme_the_help_and_the_code() -> None:
    in_code = {int(code) for code in transfer_call.ExitCode}

    assert {7, 8} <= in_code
    assert help_exit_codes() == in_code
    assert readme_exit_codes() == in_code


# --- found by the review: reruns while a transfer is pending, lines read back, locks -------------

def test_a_queue_rerun_while_the_first_run_s_transfers_are_pending_sends_none_again(run_inprocess) -> None:
    org, support, overflow, calls = evacuation_org(2, transfer_delay=30)  # accepted now, applied in 30 s
    argv = ("--from-queue", "Support", "--queue-id", overflow, "--yes", "--json")
    assert run_inprocess(org, *argv, "--wait", "0").code == 0  # moved: not verified, as asked

    again = run_inprocess(org, *argv)

    assert again.code == 6, again.err  # nothing changed by this run: try again later
    assert transfers_per_call(org) == collections.Counter(calls)  # once each
    assert all(r["status"] == "failed" and "not applied yet" in r["reason"] for r in last_by_call(again.out).values())


def test_an_undo_rerun_while_its_transfer_back_is_pending_sends_none_again(run_inprocess, tmp_path) -> None:
    org, support, overflow, calls = evacuation_org(1)
    moved = tmp_path / "moved.jsonl"
    assert run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--output", str(moved)).code == 0
    org.transfer_delay = 30

    assert run_inprocess(org, "--undo", str(moved), "--wait", "0").code == 0
    again = run_inprocess(org, "--undo", str(moved))

    assert again.code == 6, again.err
    assert [t["queueId"] for t in org.transfers] == [overflow, support]


def test_undo_writing_into_the_file_it_reads_does_not_undo_itself_when_run_again(run_inprocess, tmp_path) -> None:
    org, support, overflow, calls = evacuation_org(2)
    results = tmp_path / "results.jsonl"
    assert run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--json", "--output",
                         str(results)).code == 0

    for _ in range(2):
        assert run_inprocess(org, "--undo", str(results), "--json", "--output", str(results)).code == 0

    assert all(org.queue_of(c) == support for c in calls)
    assert collections.Counter(t["queueId"] for t in org.transfers) == {overflow: 2, support: 2}


def test_a_rerun_s_done_earlier_lines_in_the_same_file_keep_the_moves_undoable(run_inprocess, tmp_path) -> None:
    org, support, overflow, calls = evacuation_org(2)
    ids, results = tmp_path / "ids.txt", tmp_path / "results.jsonl"
    ids.write_text("\n".join(calls) + "\n")
    for source in (ids, results):  # the second run reads the file it appends to
        assert run_inprocess(org, "--conversations-file", str(source), "--queue-id", overflow, "--json",
                             "--output", str(results)).code == 0
    assert len(org.transfers) == 2

    undo = run_inprocess(org, "--undo", str(results))

    assert undo.code == 0, undo.err
    assert all(org.queue_of(c) == support for c in calls)


def test_result_lines_given_a_new_target_or_new_routing_act_on_it(run_inprocess, tmp_path) -> None:
    org, support, overflow, calls = evacuation_org(1)
    escalations = org.add_queue("Escalations")
    results = tmp_path / "moved.jsonl"
    assert run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--output", str(results)).code == 0

    in_place = run_inprocess(org, "--conversations-file", str(results), "--priority", "100")
    assert in_place.code == 0, in_place.err
    assert org.routing_of(calls[0])["priority"] == 100

    elsewhere = run_inprocess(org, "--conversations-file", str(results), "--queue-id", escalations)
    assert elsewhere.code == 0, elsewhere.err
    assert org.queue_of(calls[0]) == escalations and len(org.transfers) == 2


def test_runs_with_and_without_xdg_runtime_dir_share_one_lock(served, tmp_path) -> None:
    org, support, overflow, calls = evacuation_org(30, latency=0.03, transfer_delay=3)  # it verifies for 3 s
    base_url = served(org)
    login = start(base_url, org, "--from-queue", "Support", "--queue-id", overflow, "--yes",
                  env={"XDG_RUNTIME_DIR": str(tmp_path)})
    wait_until(lambda: org.transfers)  # the first run holds the lock and is moving calls
    cron = run_script(base_url, org, "--from-queue", "Support", "--queue-id", overflow, "--yes")
    login.communicate(timeout=120)

    assert cron.code == 7, cron.err
    assert login.returncode == 0
    assert transfers_per_call(org) == collections.Counter(calls)


def test_a_lock_file_planted_as_a_symlink_is_not_followed(run_inprocess, tmp_path) -> None:
    import hashlib

    org, support, overflow, calls = evacuation_org(1)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    folder = Path(os.environ["HOME"]) / ".cache" / "transfer_call"
    folder.mkdir(parents=True)
    name = hashlib.sha256(f"https://api.fake.test queue {support}".encode()).hexdigest()[:24] + ".lock"
    (folder / name).symlink_to(victim)

    result = run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow)

    assert result.code == 2 and "state folder" in result.err
    assert victim.read_text() == "precious\n" and org.transfers == []


# --- found by the second review --------------------------------------------------------------------

def test_finishing_the_routing_on_the_same_file_keeps_the_moves_undoable(run_inprocess, tmp_path) -> None:
    org, support, overflow, calls = evacuation_org(2)
    results = tmp_path / "results.jsonl"
    assert run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--json", "--output",
                         str(results)).code == 0
    finish = run_inprocess(org, "--conversations-file", str(results), "--queue-id", overflow, "--priority", "50",
                           "--json", "--output", str(results))
    assert finish.code == 0, finish.err
    assert all(org.routing_of(c)["priority"] == 50 for c in calls)

    undo = run_inprocess(org, "--undo", str(results))

    assert undo.code == 0, undo.err
    assert all(org.queue_of(c) == support for c in calls)


@pytest.mark.parametrize("earlier", ["text lines with routing", "a skipped line without routing"])
def test_earlier_lines_that_cannot_say_which_routing_was_set_let_the_live_call_decide(run_inprocess, tmp_path,
                                                                                      earlier: str) -> None:
    org, support, overflow, calls = evacuation_org(1)
    results = tmp_path / "results.txt"
    if earlier == "text lines with routing":
        first = run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--priority", "5")
    else:
        assert run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow).code == 0
        first = run_inprocess(org, "--conversation-id", calls[0], "--queue-id", overflow)  # "already waiting"
    assert first.code == 0, first.err
    results.write_text(first.out)

    again = run_inprocess(org, "--conversations-file", str(results), "--queue-id", overflow, "--priority", "10")

    assert again.code == 0, again.err
    assert org.routing_of(calls[0])["priority"] == 10 and len(org.transfers) == 1


def test_a_queue_rerun_after_a_lost_answer_does_not_send_that_transfer_again(run_inprocess) -> None:
    org, support, overflow, calls = evacuation_org(2, transfer_delay=30)
    org.inject("POST", f"/conversations/{calls[0]}/participants", 503, process=True)
    argv = ("--from-queue", "Support", "--queue-id", overflow, "--yes", "--wait", "0.2")
    assert run_inprocess(org, *argv).code == 8  # its outcome is unknown

    again = run_inprocess(org, *argv)

    assert again.code == 6, again.err
    assert transfers_per_call(org) == collections.Counter(calls)  # each once, over both runs


def test_an_output_file_that_fails_on_the_only_call_is_said_and_is_not_exit_0(scenario, run_inprocess) -> None:
    result = run_inprocess(scenario.org, "--conversation-id", scenario.waiting_call, "--queue-id", scenario.billing,
                           "--output", "/dev/full")

    assert result.code == 8, result.err
    assert "cannot write to the --output file" in result.err and len(scenario.org.transfers) == 1


def test_a_platform_without_getuid_and_fcntl_still_moves(scenario, run_inprocess, monkeypatch) -> None:
    monkeypatch.delattr(os, "getuid")
    monkeypatch.setitem(sys.modules, "fcntl", None)  # no file locks (Windows)

    result = run_inprocess(scenario.org, "--conversation-id", scenario.waiting_call, "--queue-id", scenario.billing)

    assert result.code == 0, result.err
    assert scenario.org.queue_of(scenario.waiting_call) == scenario.billing


def test_an_undo_right_after_a_move_not_applied_yet_waits_for_it(run_inprocess, tmp_path) -> None:
    org, support, overflow, calls = evacuation_org(1, transfer_delay=30)
    moved = tmp_path / "moved.jsonl"
    assert run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--wait", "0", "--output",
                         str(moved)).code == 0

    undo = run_inprocess(org, "--undo", str(moved))

    assert undo.code == 6, undo.err  # not "already back": the move has not happened yet
    assert len(org.transfers) == 1


# --- found by the last review ---------------------------------------------------------------------

@pytest.mark.parametrize("change", ["routing", "participant data"])
def test_a_change_whose_answers_were_lost_until_the_budget_ran_out_is_exit_8(scenario, run_inprocess,
                                                                             change: str) -> None:
    org = scenario.org
    if change == "routing":
        org.inject("PATCH", "/api/v2/routing/conversations/", 503, process=True, times=None)
        argv = ("--conversation-id", scenario.waiting_call, "--priority", "7")
    else:
        org.inject("PATCH", "/attributes", 503, process=True, times=None)
        argv = ("--conversation-id", scenario.waiting_call, "--queue-id", scenario.billing, "--attribute", "k=v")

    result = run_inprocess(org, *argv, "--json", "--retry-budget", "1")

    assert result.code == 8, result.err  # it may have been applied: not "nothing was changed"
    [record] = last_by_call(result.out).values()
    assert record["status"] in ("unknown", "failed")
    assert "may have been applied" in f"{record.get('reason')} {record.get('routingReason')}"
    if change == "routing":
        assert record["routing"] == "unknown" and org.routing_of(scenario.waiting_call)["priority"] == 7
    else:
        assert org.attributes_of(scenario.waiting_call) == {"k": "v"} and org.transfers == []


def test_a_rerun_on_lines_does_not_take_a_call_an_agent_answered_since(scenario, run_inprocess, tmp_path) -> None:
    org = scenario.org
    call = scenario.waiting_call
    [leg] = org.live_participants(call, "acd")
    lines = tmp_path / "stopped.txt"
    lines.write_text(f"not-sent {call} participant {leg['id']} from queue {scenario.support} to queue "
                     f"{scenario.billing} (not moved): not sent: stopped by SIGINT\n")
    org.answer(call, scenario.agent)  # answered where it waited, after the stopped run

    result = run_inprocess(org, "--conversations-file", str(lines), "--queue-id", scenario.billing)

    assert result.code == 0, result.err
    assert result.out.startswith(f"skipped {call}") and "answered since the earlier run" in result.out
    assert org.transfers == [] and len(org.live_participants(call, "agent")) == 1


def not_verified_line(scenario: Scenario, tmp_path) -> tuple:
    """An earlier run's last line for the waiting call: moved, then stopped before it was verified."""
    org, call = scenario.org, scenario.waiting_call
    [leg] = org.live_participants(call, "acd")
    lines = tmp_path / "moved.txt"
    lines.write_text(f"transferred {call} participant {leg['id']} from queue {scenario.support} to queue "
                     f"{scenario.billing} (moved, not verified): not verified: stopped by SIGTERM\n")
    return org, call, leg, lines


def test_a_move_the_earlier_run_did_not_see_land_is_read_again_not_taken_for_done(scenario: Scenario,
                                                                                 run_inprocess, tmp_path) -> None:
    """A stop between the 202 and the verification leaves "(moved, not verified)": a rerun on those lines confirms
    the move by reading the call (found in the target queue: skipped, done), never by trusting the line."""
    org, call, leg, lines = not_verified_line(scenario, tmp_path)
    # that run's transfer was applied after it stopped
    org._apply_transfer({"conversationId": call, "participantId": leg["id"], "queueId": scenario.billing}, None)

    result = run_inprocess(org, "--conversations-file", str(lines), "--queue-id", scenario.billing)

    assert result.code == 0, result.err
    assert org.transfers == []
    assert org.sent("GET", f"/api/v2/conversations/{call}")  # read, not taken on the line's word
    assert "already waiting in queue" in result.out


def test_a_not_verified_line_fed_back_elsewhere_never_sends_the_transfer_again(scenario: Scenario, run_inprocess,
                                                                              tmp_path, monkeypatch) -> None:
    """The earlier run's transfer is still pending (or lost) and the rerun runs as another user (no shared journal):
    the leg it moved is still there, so it is held back (exit 6), never sent a second time."""
    org = scenario.org
    org.show_recent_transfers = False  # whether queue transfers show in recentTransfers is unverified
    org.transfer_delay = 60
    call = scenario.waiting_call
    first = run_inprocess(org, "--conversation-id", call, "--queue-id", scenario.billing, "--wait", "0.2")
    assert first.code == 8 and "(moved, not verified)" in first.out
    lines = tmp_path / "moved.txt"
    lines.write_text(first.out)
    monkeypatch.setenv("HOME", str(tmp_path / "another-user"))

    again = run_inprocess(org, "--conversations-file", str(lines), "--queue-id", scenario.billing)

    assert again.code == 6, again.err
    assert len(org.transfers) == 1
    assert "is not seen applied: the leg it moved is still there" in again.out


def test_a_not_verified_line_for_a_call_moved_on_since_is_not_moved_again(scenario: Scenario, run_inprocess,
                                                                         tmp_path) -> None:
    org, call, leg, lines = not_verified_line(scenario, tmp_path)
    # it landed in Billing Overflow, then someone put it back in Support (a new leg there)
    org._apply_transfer({"conversationId": call, "participantId": leg["id"], "queueId": scenario.billing}, None)
    [landed] = org.live_participants(call, "acd")
    org._apply_transfer({"conversationId": call, "participantId": landed["id"], "queueId": scenario.support}, None)

    result = run_inprocess(org, "--conversations-file", str(lines), "--queue-id", scenario.billing)

    assert result.code == 0, result.err
    assert org.transfers == [] and org.queue_of(call) == scenario.support
    assert "moved by the earlier run (its line 1), then on elsewhere" in result.out
