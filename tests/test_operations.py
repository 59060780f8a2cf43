"""What operations people do to the tool: kill it, pipe it into head, interrupt it while it starts, rerun it.

Every test runs `python transfer_call.py` as a subprocess against the fake org served on 127.0.0.1,
and asserts on the org afterwards: nothing is sent after a stop, nothing moves twice, and every
call the run knew of has exactly one result line.
"""

from __future__ import annotations

import collections
import datetime as dt
import signal
import subprocess
import sys
import time

import pytest

from conftest import json_lines, SCRIPT, Scenario, final_lines, final_records, run_script
from fake_org import FakeOrg, build_scenario, script_environment
from test_bulk import evacuation_org, transfers_per_call


def start(base_url: str, org: FakeOrg, *argv: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(SCRIPT), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=script_environment(org, base_url, **(env or {})), stdin=subprocess.DEVNULL)


def wait_until(condition, seconds: float = 60) -> None:
    """Poll until condition() holds; the bound is a safety net, far above what a busy machine needs."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.02)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_mid_bulk_leaves_a_line_per_call_and_the_summary_and_a_rerun_moves_the_rest(served, signum) -> None:
    org, support, overflow, calls = evacuation_org(40, latency=0.05)
    base_url = served(org)
    process = start(base_url, org, "--from-queue", "Support", "--queue-id", overflow, "--yes", "--concurrency", "2",
                    "--json")
    wait_until(lambda: len(org.transfers) >= 3)
    process.send_signal(signum)
    out, err = process.communicate(timeout=120)

    assert process.returncode == 8, err  # some calls moved before the signal: partly done
    records = final_records(out)
    assert sorted(r["conversationId"] for r in records) == sorted(calls)  # a final line per call
    by_status = collections.Counter(r["status"] for r in records)
    moved_first = len(org.transfers)
    assert 3 <= moved_first < 40
    assert by_status == {"transferred": moved_first, "not-sent": 40 - moved_first}
    assert all(r["final"] for r in records)
    name = signal.Signals(signum).name
    assert all(r["reason"] == f"not sent: stopped by {name}" for r in records if r["status"] == "not-sent")
    assert f"stopped by {name}: sending nothing more" in err
    assert f"done: moved {moved_first} (" in err and f"not sent {40 - moved_first}" in err
    assert "Traceback" not in err
    for record in records:
        assert record["timestamp"].endswith("Z")
        dt.datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
        assert (record["purpose"], record["fromQueueId"], record["queueId"]) == ("acd", support, overflow)

    rerun = run_script(base_url, org, "--from-queue", "Support", "--queue-id", overflow, "--yes")

    assert rerun.code == 0, rerun.err
    assert transfers_per_call(org) == collections.Counter(calls)  # each exactly once, over both runs
    assert all(org.queue_of(c) == overflow for c in calls)


def test_lines_are_written_as_calls_finish_not_at_the_end(served) -> None:
    org, support, overflow, calls = evacuation_org(30, latency=0.05)
    process = start(served(org), org, "--from-queue", "Support", "--queue-id", overflow, "--yes", "--wait", "0",
                    "--concurrency", "1")

    first = process.stdout.readline()

    assert first.startswith("transferred ") and len(org.transfers) < 30  # the run is still going
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 8, err  # stopped after some calls moved
    assert len((first + out).splitlines()) == 30  # --wait 0: one line a call, nothing to verify


def test_a_signal_while_a_single_call_is_verified_records_the_move(served) -> None:
    scenario = build_scenario(transfer_delay=3600)  # accepted, never seen landing: verification goes on
    org = scenario.org
    process = start(served(org), org, "--conversation-id", scenario.waiting_call, "--queue-id", scenario.billing,
                    "--json", "--wait", "120")
    wait_until(lambda: org.transfers)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)

    assert process.returncode == 8, err  # it moved: partly done (not verified)
    first, record = json_lines(out)  # moved, then stopped while verifying
    assert (first["status"], first["moved"], first["final"]) == ("transferred", "yes", False)
    assert (record["status"], record["moved"], record["verified"], record["final"]) == ("transferred", "yes", False,
                                                                                       True)
    assert record["reason"] == "not verified: stopped by SIGTERM"
    assert len(org.transfers) == 1


@pytest.mark.parametrize("delay, signum", [(0.0, signal.SIGINT), (0.05, signal.SIGTERM), (0.15, signal.SIGINT),
                                           (0.3, signal.SIGHUP), (0.6, signal.SIGTERM), (1.0, signal.SIGINT),
                                           (1.6, signal.SIGTERM)])
def test_a_signal_during_start_up_sends_nothing(served, delay: float, signum: int) -> None:
    # A second of latency on every request: the transfer cannot be sent within the first three.
    scenario = build_scenario(latency=1.0)
    org = scenario.org
    process = start(served(org), org, "--user-id", scenario.agent, "--queue-id", scenario.billing)
    time.sleep(delay)
    process.send_signal(signum)
    out, err = process.communicate(timeout=120)

    assert org.sent("POST", "/replace/queue") == [] and org.transfers == []
    # -signum: before Python ran the script at all; 1 with Python's bare "KeyboardInterrupt": a SIGINT while Python
    # still compiled the script (50-100 ms, more on a busy machine), before any line of it could handle it
    compiling = signum == signal.SIGINT and process.returncode == 1 and err.strip() == "KeyboardInterrupt"
    assert process.returncode in (128 + signum, -signum) or compiling, err
    if delay >= 1.0:  # by then the script's own handler is in place
        assert process.returncode == 128 + signum, err
        assert "nothing was sent" in err and "Traceback" not in err and "Exception ignored" not in err
    assert out == ""


def test_a_closed_stdout_does_not_change_what_happens_to_a_single_call(scenario: Scenario, served) -> None:
    org = scenario.org
    process = start(served(org), org, "--user-id", scenario.agent, "--queue-id", scenario.billing)
    process.stdout.close()  # like `| head -0`, or a log shipper that died
    err = process.stderr.read()
    process.wait(timeout=120)

    assert process.returncode == 0, err
    assert "cannot write results to stdout (Broken pipe)" in err
    assert "Traceback" not in err and "Exception ignored" not in err
    assert len(org.transfers) == 1 and org.queue_of(scenario.agent_call) == scenario.billing


def test_head_1_on_a_bulk_run_keeps_the_summary_and_moves_every_call(served) -> None:
    org, support, overflow, calls = evacuation_org(15, latency=0.02)
    process = start(served(org), org, "--from-queue", "Support", "--queue-id", overflow, "--yes", "--wait", "0")

    first = process.stdout.readline()  # what `| head -1` reads before it exits
    process.stdout.close()
    err = process.stderr.read()
    process.wait(timeout=120)

    assert first.startswith("transferred ")
    assert process.returncode == 0, err
    assert "done: moved 15 (0 verified), skipped 0, failed 0, not sent 0" in err
    assert "Traceback" not in err and "Exception ignored" not in err
    assert transfers_per_call(org) == collections.Counter(calls)


def test_rerunning_a_move_that_already_happened_is_success_and_sends_nothing(scenario: Scenario, served) -> None:
    org = scenario.org
    base_url = served(org)
    argv = ("--conversation-id", scenario.waiting_call, "--queue-id", scenario.billing, "--json")
    assert run_script(base_url, org, *argv).code == 0

    rerun = run_script(base_url, org, *argv)

    assert rerun.code == 0, rerun.err
    [record] = json_lines(rerun.out)
    assert record["status"] == "skipped" and "already waiting in queue" in record["reason"]
    assert len(org.sent("POST", "/replace/queue")) == 1 and len(org.transfers) == 1
    assert org.queue_of(scenario.waiting_call) == scenario.billing


@pytest.mark.parametrize("how", ["a full disk", "a closed descriptor"])
def test_a_stdout_that_cannot_be_written_does_not_stop_a_bulk_run(served, how: str) -> None:
    org, support, overflow, calls = evacuation_org(20, latency=0.02)
    env = script_environment(org, served(org))
    command = [sys.executable, str(SCRIPT), "--from-queue", "Support", "--queue-id", overflow, "--yes", "--json"]
    if how == "a full disk":
        with open("/dev/full", "w") as full:
            done = subprocess.run(command, stdout=full, stderr=subprocess.PIPE, text=True, env=env, timeout=120,
                                  stdin=subprocess.DEVNULL)
    else:  # `>&-`: the program starts with no stdout at all
        done = subprocess.run(["bash", "-c", 'exec "$@" >&-', "-", *command], stderr=subprocess.PIPE, text=True,
                              env=env, timeout=120, stdin=subprocess.DEVNULL)

    assert done.returncode == 0, done.stderr
    assert "cannot write results to stdout" in done.stderr
    assert "done: moved 20 (20 verified), skipped 0, failed 0, not sent 0" in done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
    assert transfers_per_call(org) == collections.Counter(calls)


def test_a_signal_that_came_after_every_call_was_done_changes_no_exit_code() -> None:
    import transfer_call

    stop = transfer_call.Stop()
    stop.preparing = False
    stop.handle(signal.SIGTERM)
    done = transfer_call.Call("c1", "p1", moved="yes", verified=True)
    cut = transfer_call.Call("c2", "p2", reason="not sent: stopped by SIGTERM", cut_short=True)

    assert transfer_call.exit_status([done], stop) == (0, None)
    assert transfer_call.exit_status([cut], stop) == (143, None)  # nothing was changed
    assert transfer_call.exit_status([done, cut], stop)[0] == 8  # something was: partly done


def test_a_stopped_move_with_routing_is_finished_by_a_rerun_on_its_result_lines(served, tmp_path) -> None:
    org, support, overflow, calls = evacuation_org(30, latency=0.05)
    base_url = served(org)
    process = start(base_url, org, "--from-queue", "Support", "--queue-id", overflow, "--priority", "100", "--yes",
                    "--concurrency", "1")
    wait_until(lambda: len(org.transfers) >= 3)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)

    assert process.returncode == 8, err
    lines = final_lines(out)
    assert len(lines) == 30
    unrouted = [line for line in lines if line.startswith("transferred ") and "routing failed" in line]
    assert unrouted and all("routing failed)" in line and "not sent: stopped by SIGTERM" in line for line in unrouted)
    assert "moved without the routing change" in err and "--conversations-file" in err
    results = tmp_path / "results.txt"
    results.write_text(out)  # the text result lines, as a terminal or a log file keeps them

    rerun = run_script(base_url, org, "--conversations-file", str(results), "--queue-id", overflow, "--priority",
                       "100", "--yes")

    assert rerun.code == 0, rerun.err
    assert transfers_per_call(org) == collections.Counter(calls)  # each moved once, over both runs
    assert all(org.queue_of(c) == overflow and org.routing_of(c)["priority"] == 100 for c in calls)


def test_a_signal_while_an_unclear_transfer_is_checked_is_the_signal_s_exit_and_sends_no_second(served) -> None:
    scenario = build_scenario()
    org = scenario.org
    org.inject("POST", "/replace/queue", 504)  # not processed, but the script cannot know: it watches the call
    process = start(served(org), org, "--conversation-id", scenario.waiting_call, "--queue-id", scenario.billing)
    wait_until(lambda: org.sent("POST", "/replace/queue"))
    wait_until(lambda: len(org.sent("GET", f"/conversations/{scenario.waiting_call}")) >= 2)  # the check began
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)

    assert process.returncode == 8, err  # the transfer may have gone through: something may have changed
    assert len(org.sent("POST", "/replace/queue")) == 1 and org.transfers == []
    [line] = out.splitlines()
    assert line.startswith("unknown ") and "(may have moved)" in line
    assert "may or may not have been processed" in line and "stopped by SIGINT" in line


def test_a_second_signal_while_starting_does_not_interrupt_the_handling_of_the_first() -> None:
    import transfer_call

    stop = transfer_call.Stop()
    with pytest.raises(KeyboardInterrupt):
        stop.handle(signal.SIGINT)
    stop.handle(signal.SIGINT)  # a second Ctrl-C a moment later: no KeyboardInterrupt inside main's handling

    assert stop.exit_code == 130 and stop.signalled


def test_a_run_under_nohup_is_not_stopped_by_sighup(served) -> None:
    org, support, overflow, calls = evacuation_org(20, latency=0.05)
    ignore_hangup = lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN)  # noqa: E731 - what nohup does
    process = subprocess.Popen([sys.executable, str(SCRIPT), "--from-queue", "Support", "--queue-id", overflow, "--yes"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                               env=script_environment(org, served(org)), preexec_fn=ignore_hangup)
    wait_until(lambda: len(org.transfers) >= 3)
    process.send_signal(signal.SIGHUP)  # the terminal closed
    out, err = process.communicate(timeout=120)

    assert process.returncode == 0, err
    assert transfers_per_call(org) == collections.Counter(calls)


def test_an_output_file_that_cannot_be_written_stops_further_changes(served) -> None:
    org, support, overflow, calls = evacuation_org(20, latency=0.02)

    result = run_script(served(org), org, "--from-queue", "Support", "--queue-id", overflow, "--yes", "--output",
                        "/dev/full", "--concurrency", "2")

    assert result.code == 8, result.err  # the first moves could not be recorded there: nothing more is sent
    assert "cannot write to the --output file" in result.err
    assert 1 <= len(org.transfers) <= 4
    assert len(final_lines(result.out)) == 20  # stdout still has every call's line


def test_a_flag_cut_short_is_not_taken_for_another(run_inprocess, scenario: Scenario) -> None:
    result = run_inprocess(scenario.org, "--from-queu", "Support", "--queue-id", scenario.billing)

    assert result.code == 2 and scenario.org.requests == []
    assert "unrecognized arguments: --from-queu Support (see --help)" in result.err
