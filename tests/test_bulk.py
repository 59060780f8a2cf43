"""Queue evacuation (--from-queue): every waiting call moves exactly once, at the pace the rate limit allows."""

from __future__ import annotations

import collections
import io
import signal
import subprocess
import sys
import time

import pytest

import transfer_call
from conftest import json_lines, SCRIPT, final_records, run_script
from fake_org import FakeOrg, script_environment


def evacuation_org(calls: int, **options) -> tuple[FakeOrg, str, str, list[str]]:
    org = FakeOrg(**options)
    support, overflow = org.add_queue("Support"), org.add_queue("Overflow")
    return org, support, overflow, [org.add_waiting_call(support) for _ in range(calls)]


def transfers_per_call(org: FakeOrg) -> collections.Counter:
    return collections.Counter(t["conversationId"] for t in org.transfers)


def test_every_waiting_call_moves_once_through_answers_hangups_429_and_a_lost_503(monkeypatch, run_inprocess) -> None:
    monkeypatch.setattr(transfer_call, "PAGE_SIZE", 10)  # 34 calls: four pages
    org, support, overflow, calls = evacuation_org(34)
    agent = org.add_user("Ada", "ada@example.com")
    answered, hung_up, lost_answer = calls[3], calls[7], calls[9]
    org.when("POST", f"/conversations/{answered}/participants", lambda o: o.answer(answered, agent))
    org.when("POST", f"/conversations/{hung_up}/participants", lambda o: o.end_call(hung_up))
    org.inject("POST", f"/conversations/{lost_answer}/participants", 503, process=True)
    org.inject("POST", "/replace/queue", 429, retry_after=2, times=1,
               body={"status": 429, "code": "too.many.requests.retry.after"})

    result = run_inprocess(org, "--from-queue", "Support", "--queue-name", "Overflow", "--yes", "--json")

    assert result.code == 0, result.err
    records = {r["conversationId"]: r for r in json_lines(result.out)}
    assert set(records) == set(calls)
    still_waiting = [c for c in calls if c not in (answered, hung_up)]
    assert all(org.queue_of(c) == overflow for c in still_waiting)
    assert transfers_per_call(org) == collections.Counter(still_waiting)  # each exactly once
    assert org.live_participants(answered, "agent") and org.queue_of(answered) is None
    for skipped in (answered, hung_up):
        assert records[skipped]["status"] == "skipped" and records[skipped]["reason"]
    assert all(records[c]["status"] == "transferred" and records[c]["verified"] for c in still_waiting)
    for record in records.values():  # the same fields as a single call's record
        assert (record["fromQueueId"], record["queueId"], record["queueName"]) == (support, overflow, "Overflow")
        assert (record["purpose"], record["userId"]) == ("acd", None) and record["timestamp"].endswith("Z")
    assert len(org.sent("POST", "/details/query")) >= 4  # every page was read
    assert "done: moved 32 (32 verified), skipped 2, failed 0" in result.err


def test_costs_barely_more_than_one_request_per_moved_call(run_inprocess) -> None:
    org, support, overflow, calls = evacuation_org(120)

    result = run_inprocess(org, "--from-queue", support, "--queue-id", overflow, "--yes")

    assert result.code == 0, result.err
    api_requests = [r for r in org.requests if r["path"] != "/oauth/token"]
    assert len(api_requests) / len(calls) <= 1.1, collections.Counter(r["path"][:30] for r in api_requests)
    assert org.sent("GET", "/api/v2/conversations/") == []  # verified by listing the target queue
    assert len(org.transfers) == 120


def answered_but_listed_as_waiting(org: FakeOrg, call: str) -> dict:
    """An agent answers the call, and analytics, lagging, still shows its queue leg open beside the agent's."""
    org.answer(call, org.add_user("Ada", "ada@example.com"))
    leg = org.conversations[call]["participants"][1]
    del leg["endTime"]
    org.stale_in_analytics.add(call)
    return leg


def test_calls_already_with_an_agent_are_skipped_with_the_reason(run_inprocess) -> None:
    org, support, overflow, calls = evacuation_org(3)
    leg = answered_but_listed_as_waiting(org, calls[0])

    result = run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow)

    assert result.code == 0, result.err
    assert (f"skipped {calls[0]} participant {leg['id']} from queue {support} to queue {overflow} (not moved): "
            "already with an agent") in result.out
    assert transfers_per_call(org) == collections.Counter(calls[1:])


def test_dry_run_lists_each_call_with_its_wait_and_sends_nothing(run_inprocess) -> None:
    org, support, overflow, calls = evacuation_org(12)

    result = run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--dry-run")

    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert len(lines) == 12 and all(line.startswith("dry-run ") and "(waiting " in line for line in lines)
    acd = org.live_participants(calls[0], "acd")[0]
    assert (f"POST /api/v2/conversations/{calls[0]}/participants/{acd['id']}/replace/queue "
            f'{{"queueId": "{overflow}"}}') in result.out
    assert org.transfers == [] and org.sent("POST", "/replace/queue") == []


def test_limit_moves_only_the_oldest_calls(run_inprocess) -> None:
    org, support, overflow, calls = evacuation_org(6)

    result = run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--limit", "2")

    assert result.code == 0, result.err
    assert transfers_per_call(org) == collections.Counter(calls[:2])
    assert [org.queue_of(c) for c in calls[2:]] == [support] * 4


def test_more_than_ten_calls_need_yes_when_not_on_a_terminal(run_inprocess, monkeypatch) -> None:
    org, support, overflow, calls = evacuation_org(11)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))

    result = run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow)

    assert result.code == 2
    assert "this would move 11 calls from Support to Overflow; pass --yes" in result.err
    assert org.transfers == []


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("answer, moves", [("y\n", True), ("yes\n", True), ("\n", False), ("n\n", False)])
def test_on_a_terminal_more_than_ten_calls_are_confirmed_by_a_prompt(answer: str, moves: bool, capsys) -> None:
    settings = transfer_call.Settings(client_id="i", client_secret="s", base_url="http://127.0.0.1")
    if moves:
        transfer_call.confirm_bulk(11, "move 11 calls from Support to Overflow", settings, stdin=Terminal(answer))
    else:
        with pytest.raises(transfer_call.UsageError, match="not confirmed; nothing was changed"):
            transfer_call.confirm_bulk(11, "move 11 calls from Support to Overflow", settings, stdin=Terminal(answer))
    assert "Move 11 calls from Support to Overflow? [y/N]" in capsys.readouterr().err


def test_source_equal_to_target_is_refused(run_inprocess) -> None:
    org, support, overflow, calls = evacuation_org(2)

    result = run_inprocess(org, "--from-queue", support, "--queue-name", "Support")

    assert result.code == 2 and "same queue" in result.err
    assert org.sent("POST") == [r for r in org.requests if r["path"] == "/oauth/token"]


def test_an_empty_queue_ends_with_exit_4(run_inprocess) -> None:
    org, support, overflow, _ = evacuation_org(0)

    result = run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow)

    assert result.code == 4 and "no voice calls are waiting in queue Support" in result.err


def test_a_missing_transfer_permission_stops_the_run_early(run_inprocess) -> None:
    org, support, overflow, calls = evacuation_org(30)
    org.permissions.discard("conversation:communication:blindTransferQueue")

    result = run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--yes", "--concurrency", "2")

    assert result.code == 3, result.err
    assert len(org.sent("POST", "/replace/queue")) <= 2
    assert result.out.count("not sent: the run stopped after an earlier error") >= 28
    [error] = [line for line in result.err.splitlines() if "error:" in line]  # the reason, once, on stderr
    assert "the run stopped early" in error and "missing permission conversation:communication:blindTransfer" in error


def test_an_unknown_target_queue_id_is_found_before_any_transfer(run_inprocess) -> None:
    org, support, overflow, calls = evacuation_org(20)
    unknown = "00000000-0000-4000-8000-000000000000"

    result = run_inprocess(org, "--from-queue", support, "--queue-id", unknown, "--yes", "--concurrency", "1")

    assert result.code == 2, result.err  # a queue that does not exist is a configuration error
    assert org.sent("POST", "/replace/queue") == [] and org.transfers == []  # looked up before any transfer
    assert f"queue {unknown} does not exist or is not visible" in result.err


def test_an_unknown_source_queue_id_is_named_as_such(run_inprocess) -> None:
    org, support, overflow, calls = evacuation_org(2)

    result = run_inprocess(org, "--from-queue", "00000000-0000-4000-8000-000000000000", "--queue-id", overflow)

    assert result.code == 2
    assert "queue 00000000-0000-4000-8000-000000000000 does not exist or is not visible" in result.err


def test_some_failures_end_with_exit_8_partly_done(run_inprocess) -> None:
    org, support, overflow, calls = evacuation_org(5)
    org.inject("POST", f"/conversations/{calls[2]}/participants", 400,
               body={"status": 400, "code": "bad.request", "message": "refused"})

    result = run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--json")

    assert result.code == 8
    statuses = collections.Counter(r["status"] for r in final_records(result.out))
    assert statuses == {"transferred": 4, "failed": 1}


def test_pacing_keeps_429s_to_a_handful_under_a_tight_limit(run_inprocess) -> None:
    org, support, overflow, calls = evacuation_org(60, rate_limit=40, rate_window=1.5)

    result = run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow, "--yes", real_sleep=True)

    assert result.code == 0, result.err
    assert transfers_per_call(org) == collections.Counter(calls)
    assert org.rate_limited == 0  # the inin-ratelimit-* headers were heeded before any 429
    assert "rate limit reached (40 a minute): holding requests for" in result.err


def test_one_waiting_call_is_spoken_of_in_the_singular(run_inprocess) -> None:
    org, support, overflow, calls = evacuation_org(1)

    result = run_inprocess(org, "--from-queue", "Support", "--queue-id", overflow)

    assert result.code == 0, result.err
    assert "moving 1 call from Support to Overflow, 1 at a time" in result.err
    assert "done: moved 1 (1 verified), skipped 0, failed 0, not sent 0" in result.err
    assert org.queue_of(calls[0]) == overflow


def test_the_time_left_accounts_for_the_rate_limit() -> None:
    class Paced:
        allowed, requests_sent = 300, 120  # 300 requests a minute; 1.2 requests per call so far

    report = transfer_call.Report(as_json=False)
    report.total, report.transport = 400, Paced()
    report.counts["transferred"] = 100
    report.handled.update(f"call {n}" for n in range(100))  # 100 calls acted on
    report.started -= 1.0  # 100 calls in one second: unpaced, the rest would take 3 s

    line = report.progress()

    left = int(line.rsplit("about ", 1)[1].split("s left")[0])
    assert left == 72  # 300 calls left x 1.2 requests / 300 a minute = 72 s


def test_ctrl_c_stops_new_transfers_and_a_rerun_moves_the_rest_once(served) -> None:
    org, support, overflow, calls = evacuation_org(40, latency=0.05)
    base_url = served(org)
    process = subprocess.Popen([sys.executable, str(SCRIPT), "--from-queue", "Support", "--queue-id", overflow,
                                "--yes", "--concurrency", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=script_environment(org, base_url), stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while len(org.transfers) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)

    assert process.returncode == 8, err  # stopped by SIGINT after some calls moved: partly done
    assert "stopped by SIGINT: sending nothing more" in err and "done: moved" in err
    assert "stopped by SIGINT (moved" in err and "something was changed" in err
    moved_first = len(org.transfers)
    assert 3 <= moved_first < 40
    assert out.count("not sent: stopped by SIGINT") == 40 - moved_first

    rerun = run_script(base_url, org, "--from-queue", "Support", "--queue-id", overflow, "--yes")

    assert rerun.code == 0, rerun.err
    assert transfers_per_call(org) == collections.Counter(calls)
    assert all(org.queue_of(c) == overflow for c in calls)


def test_a_whole_evacuation_as_a_subprocess(served) -> None:
    org, support, overflow, calls = evacuation_org(35)

    result = run_script(served(org), org, "--from-queue", "Support", "--queue-name", "Overflow", "--yes")

    assert result.code == 0, result.err
    assert result.out.count("(moved, verified)") == 35 and result.out.count("(moved, verifying)") == 35
    assert transfers_per_call(org) == collections.Counter(calls)
    assert org.client_secret not in result.out + result.err

