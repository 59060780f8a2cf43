"""Benchmark transfer_call.py against the alternatives, on the fake org served on 127.0.0.1.

    python bench/run.py [--latency 0.05] [--calls 300] [--scale 10] [--follow-window 20] [--follow-every 0.5]
    python bench/run.py --only follow    (section 5 alone)
    python bench/run.py --only home      (section 6 alone) [--home-runs 5]

Prints one table of figures measured in this run, each as a ratio to the floor or to the
alternative (absolute times on a shared machine mean little):
  1. one transfer by --user-id: this script, the same steps on the SDK's default urllib3 client,
     and the floor (the fewest requests times the latency, plus a bare interpreter start);
  2. start-up: --help and a configuration error, against `python -c pass`;
  3. a bulk move of N waiting calls with the org enforcing 300 requests per rolling minute,
     time scaled down (300 per 60/scale seconds) and reported per scaled-back minute, against a
     sequential read-then-transfer loop and against the theoretical bound;
  4. peak memory (max RSS) of a single-call run and of the bulk run;
  5. --follow: calls arriving in the source queue at a steady rate while the script follows it
     (events over the WebSocket), each call's time from arrival to its accepted transfer, against
     the org's latency, and the requests per moved call, against the goals;
  6. a real home: one transfer by --user-id (as in 1) with HOME a folder of ~20,000 folders (project
     trees with node_modules, built in a temp folder and removed at the end), against HOME an empty
     temp folder, interleaved in the same run (the SDK's Configuration() may watch all of $HOME).
Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fake_org import FakeOrg, build_scenario, script_environment, serve  # noqa: E402

SCRIPT = ROOT / "transfer_call.py"
BASELINE = ROOT / "bench" / "sdk_default_client.py"
RATE_LIMIT = 300
SDK = "PureCloudPlatformClientV2"


def environment(org: FakeOrg, base_url: str) -> dict[str, str]:
    return script_environment(org, base_url, HOME=tempfile.gettempdir())


def timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int, int]:
    """(wall seconds, exit code, max RSS in KiB) of one command, measured by a fresh parent process."""
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode; "
             "print(time.perf_counter() - t, code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, env=env,
                         check=True).stdout.split()
    return float(out[0]), int(out[1]), int(out[2])


COUNT_MODULES = """\
import runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit:
    pass
print(sum(1 for m in sys.modules if m.startswith("PureCloudPlatformClientV2")), file=sys.stderr)
"""


def sdk_modules(argv: list[str], env: dict[str, str]) -> int:
    """How many modules of the SDK a run of the script argv[0] loads."""
    done = subprocess.run([sys.executable, "-c", COUNT_MODULES, *argv], capture_output=True, text=True, env=env,
                          check=True)
    return int(done.stderr.split()[-1])


def median_time(argv: list[str], runs: int, env: dict[str, str] | None = None) -> float:
    return statistics.median(timed(argv, env)[0] for _ in range(runs))


def single_org(latency: float) -> tuple[FakeOrg, str, str]:
    org = FakeOrg(latency=latency)
    support, billing = org.add_queue("Support"), org.add_queue("Billing")
    agent = org.add_user("Ada", "ada@example.com")
    org.add_agent_call(agent, support)
    return org, agent, billing


def api_requests(org: FakeOrg) -> int:
    return sum(1 for r in org.requests if r["path"] != "/oauth/token")


def bench_single(latency: float, runs: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    bare = median_time([sys.executable, "-c", "pass"], runs)
    figures["bare"] = bare
    for name, argv in (("script", [sys.executable, str(SCRIPT), "--user-id", "{agent}", "--queue-id", "{queue}"]),
                       ("sdk", [sys.executable, str(BASELINE), "single", "{agent}", "{queue}"])):
        walls, requests, rss = [], [], []
        for _ in range(runs):
            org, agent, billing = single_org(latency)
            with serve(org) as base_url:
                wall, code, max_rss = timed([part.format(agent=agent, queue=billing) for part in argv],
                                            environment(org, base_url))
            assert code == 0 and len(org.transfers) == 1, (name, code, org.transfers)
            walls.append(wall)
            requests.append(api_requests(org) + 1)  # + the token request
            rss.append(max_rss)
        figures[f"{name}_wall"], figures[f"{name}_requests"] = statistics.median(walls), max(requests)
        figures[f"{name}_rss"] = max(rss)
        org, agent, billing = single_org(latency)
        with serve(org) as base_url:
            figures[f"{name}_modules"] = sdk_modules([part.format(agent=agent, queue=billing) for part in argv[1:]],
                                                     environment(org, base_url))
    figures.update(split_single(latency))
    # The floor: find (details query + one conversation read) + transfer + one verification read,
    # plus the token every client needs, each one round trip, after a bare interpreter start.
    figures["floor_requests"] = 5
    figures["floor_wall"] = bare + 5 * latency
    return figures


def split_single(latency: float) -> dict[str, float]:
    """Where one in-process transfer spends its time: SDK import, network waits, deliberate waits, the rest."""
    import httpx

    import transfer_call

    started = time.perf_counter()
    transfer_call.load_sdk()
    imports = time.perf_counter() - started
    network, slept = [0.0], [0.0]
    real_send, real_sleep = httpx.Client.send, time.sleep

    def send(self, *args, **kwargs):
        t = time.perf_counter()
        try:
            return real_send(self, *args, **kwargs)
        finally:
            network[0] += time.perf_counter() - t

    def sleep(seconds: float) -> None:
        thread = threading.current_thread()  # the script's own threads, not the fake org's (its latency)
        if thread is threading.main_thread() or thread.name.startswith("ThreadPoolExecutor"):
            slept[0] += seconds
        real_sleep(seconds)

    def one_run() -> float:
        """Non-network, non-sleeping seconds of one in-process transfer."""
        org, agent, billing = single_org(latency)
        network[0] = slept[0] = 0.0
        with serve(org) as base_url, _patched(httpx.Client, "send", send), _patched(time, "sleep", sleep), \
                _env(environment(org, base_url)), contextlib.redirect_stdout(io.StringIO()):
            started = time.perf_counter()
            code = transfer_call.main(["-q", "--user-id", agent, "--queue-id", billing])
            wall = time.perf_counter() - started
        assert code == 0 and len(org.transfers) == 1
        return wall - network[0] - slept[0]

    first = one_run()  # pays for httpx's and httpcore's lazy imports and the SDK's one-time set-up
    steady = statistics.median(one_run() for _ in range(3))
    return {"split_imports": imports, "split_network": network[0], "split_sleep": slept[0],
            "split_overhead": steady, "split_first": first}


@contextlib.contextmanager
def _patched(owner, name, value):
    original = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)


@contextlib.contextmanager
def _env(values: dict[str, str]):
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def bench_startup(runs: int) -> dict[str, float]:
    clean = script_environment()
    with tempfile.TemporaryDirectory() as empty:
        clean["HOME"] = empty
        return {"bare": median_time([sys.executable, "-c", "pass"], runs, clean),
                "help": median_time([sys.executable, str(SCRIPT), "--help"], runs, clean),
                "config_error": median_time([sys.executable, str(SCRIPT), "--user-id", "x"], runs, clean),
                "sdk_import": median_time([sys.executable, "-c", "import PureCloudPlatformClientV2"], runs, clean)}


def bulk_org(calls: int, latency: float, scale: float) -> tuple[FakeOrg, str, str, list[str]]:
    org = FakeOrg(latency=latency, rate_limit=RATE_LIMIT, rate_window=60.0 / scale)
    support, overflow = org.add_queue("Support"), org.add_queue("Overflow")
    return org, support, overflow, [org.add_waiting_call(support) for _ in range(calls)]


BULK_RUNS = (  # (key, label, argv, whether the injected latency is scaled with the rate limit's time)
    ("script", "transfer_call.py --from-queue", [str(SCRIPT), "--from-queue", "{source}", "--queue-id", "{target}",
                                                 "--yes", "-q"], True),
    ("naive", "sequential read-then-transfer", [str(BASELINE), "naive-bulk", "{source}", "{target}"], True),
    ("script_slow", "transfer_call.py --from-queue", [str(SCRIPT), "--from-queue", "{source}", "--queue-id",
                                                      "{target}", "--yes", "-q"], False),
    ("naive_slow", "sequential read-then-transfer", [str(BASELINE), "naive-bulk", "{source}", "{target}"], False),
    ("routing", "--from-queue --priority 100", [str(SCRIPT), "--from-queue", "{source}", "--queue-id", "{target}",
                                                "--priority", "100", "--yes", "-q"], True),
    ("attributes", "  ... --attribute transferReason=outage", [str(SCRIPT), "--from-queue", "{source}", "--queue-id",
                                                             "{target}", "--priority", "100", "--attribute",
                                                             "transferReason=outage", "--yes", "-q"], True),
    ("in_place", "--from-queue --priority 50 (in place)", [str(SCRIPT), "--from-queue", "{source}", "--priority",
                                                           "50", "--yes", "-q"], True),
)
# Requests a call needs at the least, which bounds calls a minute to the limit divided by it.
FLOOR_REQUESTS = {"routing": 2, "attributes": 3, "in_place": 2}  # in place: read live, then the PATCH


def bench_bulk(calls: int, latency: float, scale: float) -> dict[str, float]:
    """Each bulk run on a fresh org; calls/min counts from the first API request to the last, verification included."""
    figures: dict[str, float] = {}
    for key, _, argv, scaled in BULK_RUNS:
        org, support, overflow, waiting = bulk_org(calls, latency / scale if scaled else latency, scale)
        with serve(org) as base_url:
            _, code, max_rss = timed([sys.executable, *[part.format(source=support, target=overflow) for part in argv]],
                                     environment(org, base_url))
        moved_twice = sum(1 for n in collections.Counter(t["conversationId"] for t in org.transfers).values() if n > 1)
        moved_twice += sum(1 for n in collections.Counter(c["conversationId"] for c in org.routing_changes).values()
                           if n > 1)  # and changed twice
        if key == "in_place":  # nothing moves: count the calls changed where they wait
            moved = sum(1 for c in waiting if (org.routing_of(c) or {}).get("priority") == 50)
        else:
            moved = sum(1 for c in waiting if org.queue_of(c) == overflow
                        and (key not in ("routing", "attributes") or org.routing_of(c)["priority"] == 100)
                        and (key != "attributes" or org.attributes_of(c) == {"transferReason": "outage"}))
        active = org_active_seconds(org)
        figures.update({f"{key}_code": code, f"{key}_moved": moved, f"{key}_twice": moved_twice,
                        f"{key}_requests": api_requests(org), f"{key}_429": org.rate_limited, f"{key}_rss": max_rss,
                        f"{key}_per_minute": moved / active * 60 / scale if active else 0.0})
    figures["bound_per_minute"] = RATE_LIMIT / 1  # at least one request (the transfer) per moved call
    return figures


def org_active_seconds(org: FakeOrg) -> float:
    """Seconds from the first API request the org saw to the last one."""
    times = [r["at"] for r in org.requests if r["path"] != "/oauth/token"]
    return max(times) - min(times) if times else 0.0


# --follow's goals: arrival to accepted transfer at most this far above one round trip (the median), and at
# most the listing period (the worst); requests per moved call, auth, channel and listings included.
FOLLOW_MEDIAN_ABOVE_LATENCY = 1.0
FOLLOW_WORST = 60.0  # transfer_call.LISTING_EVERY
FOLLOW_REQUESTS_PER_CALL = 2.1


def follow_org(latency: float) -> tuple[FakeOrg, str, str]:
    """The scenario's org with Support empty (its two calls ended), heartbeats every 5 s: (org, Support, Billing)."""
    scenario = build_scenario(latency=latency)
    for call in (scenario.waiting_call, scenario.agent_call):
        scenario.org.end_call(call)
    scenario.org.heartbeat_period = 5.0
    return scenario.org, scenario.support, scenario.billing


def bench_follow(latency: float, window: int, every: float) -> dict[str, float]:
    """One --follow run of `window` s on a fresh org, with a call arriving in Support every `every` s.

    Arrivals start once the script's socket is open and stop 2 s before the window can end (it
    starts after the process does). Requests count everything the org answered (this org serves
    only this run): the token, the channel, the subscription, the listings, the transfers, the
    verification reads; the WebSocket upgrade is not an API request and is not counted.
    """
    org, support, billing = follow_org(latency)
    arrived: list[str] = []
    waited = {"socket": 0.0, "timed_out": 0.0}

    def arrive(until: float) -> None:
        started = time.monotonic()
        while org.sockets_opened < 1:
            if time.monotonic() - started > 30.0 or process.poll() is not None:
                waited["timed_out"] = 1.0
                return
            time.sleep(0.02)
        waited["socket"] = time.monotonic() - started
        while time.monotonic() < until:
            arrived.append(org.add_waiting_call(support, caller=f"+1555040{len(arrived):04d}"))
            time.sleep(every)

    with serve(org) as base_url, tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.monotonic()
        process = subprocess.Popen([sys.executable, str(SCRIPT), "--from-queue", "Support", "--queue-id", billing,
                                    "--follow", f"{window}s", "--yes"], stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=err, env=environment(org, base_url))
        thread = threading.Thread(target=arrive, args=(started + window - 2.0,), daemon=True)
        thread.start()
        try:
            code = process.wait(timeout=window + 120)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        wall = time.monotonic() - started
        thread.join(timeout=5)
        err.seek(0)
        stderr = err.read()
    transferred = collections.Counter(t["conversationId"] for t in org.transfers)
    moved = [c for c in arrived if transferred[c] and org.queue_of(c) == billing]
    delays = sorted(org.accepted_at[c] - org.arrived_at[c] for c in moved)
    return {"code": code, "wall": wall, "stderr": stderr, "socket_wait": waited["socket"],
            "socket_timed_out": waited["timed_out"], "arrivals": len(arrived), "moved": len(moved),
            "twice": sum(1 for n in transferred.values() if n > 1), "transfers": len(org.transfers),
            "median": statistics.median(delays) if delays else float("nan"),
            "worst": delays[-1] if delays else float("nan"), "requests": len(org.requests),
            "per_moved": len(org.requests) / len(moved) if moved else float("inf"),
            "events": org.events_sent, "sockets": org.sockets_opened}


def print_follow(follow: dict[str, float], latency: float, window: int, every: float) -> None:
    print(f"\n5. --follow {window}s: a call arriving in Support every {every:g}s once the socket is open "
          f"(after {follow['socket_wait']:.1f}s), {latency * 1000:.0f} ms latency, events over the WebSocket")
    if follow["socket_timed_out"]:
        print("   the script opened no socket within 30 s: no call was made to arrive")
    median_above = follow["median"] - latency

    def row(label: str, measured: str, goal: str = "", met: bool | None = None) -> None:
        verdict = "" if met is None else "met" if met else "NOT met"
        print(f"   {label:<34}{measured:>10}   {goal:<22}{verdict}".rstrip())

    print(f"   {'':<34}{'measured':>10}   goal")
    row("arrivals", f"{follow['arrivals']:.0f}")
    row("moved", f"{follow['moved']:.0f}", f"all {follow['arrivals']:.0f}", follow["moved"] == follow["arrivals"] > 0)
    row("moved twice", f"{follow['twice']:.0f}", "0", follow["twice"] == 0)
    row("arrival → move, median", f"{follow['median'] * 1000:.0f} ms",
        f"≤ {(latency + FOLLOW_MEDIAN_ABOVE_LATENCY) * 1000:.0f} ms", median_above <= FOLLOW_MEDIAN_ABOVE_LATENCY)
    row("  median − latency", f"{median_above * 1000:.0f} ms", f"≤ {FOLLOW_MEDIAN_ABOVE_LATENCY * 1000:.0f} ms")
    row("arrival → move, worst", f"{follow['worst'] * 1000:.0f} ms", f"≤ {FOLLOW_WORST * 1000:.0f} ms (listing)",
        follow["worst"] <= FOLLOW_WORST)
    row("  worst − latency", f"{(follow['worst'] - latency) * 1000:.0f} ms")
    row("requests per moved call", f"{follow['per_moved']:.2f}", f"≤ {FOLLOW_REQUESTS_PER_CALL:g}",
        follow["per_moved"] <= FOLLOW_REQUESTS_PER_CALL)
    print(f"   ({follow['requests']:.0f} requests in all, auth, channel, subscription and listings included; "
          f"{follow['events']:.0f} events sent, {follow['sockets']:.0f} socket(s) opened; exit code "
          f"{follow['code']:.0f}, {follow['wall']:.0f}s wall)")
    print("   without events (org.lose_events) only the listing, every 60 s, finds arrivals: not run here (the "
          "script's period cannot be shortened from outside); tests/test_follow.py checks that bound")
    if follow["code"] != 0 or follow["moved"] != follow["arrivals"] or follow["socket_timed_out"]:
        print("   the script's stderr:")
        for line in str(follow["stderr"]).splitlines():
            print(f"     {line}")


# A real home: the SDK's Configuration() starts a watchdog observer on ~/.genesyscloudpython, or, when that
# folder is missing, on the nearest existing parent ($HOME), recursively: one inotify watch per folder.
HOME_GOAL = 1.1  # one transfer with a big HOME at most this many times the one with an empty HOME
HOME_PROJECTS, HOME_PACKAGES, HOME_PACKAGE_FOLDERS = 40, 100, ("lib", "dist", "src", "test")


def build_home(root: Path) -> int:
    """Fill root like a developer's home: code/project-N/node_modules/pkg-M/{lib,dist,src,test}; the folders made."""
    made = 0
    for project in range(HOME_PROJECTS):
        modules = root / "code" / f"project-{project:02d}" / "node_modules"
        for package in range(HOME_PACKAGES):
            for sub in HOME_PACKAGE_FOLDERS:
                (modules / f"pkg-{package:03d}" / sub).mkdir(parents=True)
    for _, folders, _ in os.walk(root):
        made += len(folders)
    return made


def bench_home(latency: float, runs: int) -> dict[str, float]:
    """One transfer by --user-id, as a user runs it (a subprocess, wall from start to exit), with HOME a
    folder of ~20,000 folders and with HOME an empty folder, interleaved (the order alternates each
    round); one untimed round first, so both start with a warm page cache and ~/.cache/transfer_call made."""
    argv = [sys.executable, str(SCRIPT), "--user-id", "{agent}", "--queue-id", "{queue}"]
    walls: dict[str, list[float]] = {"big": [], "empty": []}
    with tempfile.TemporaryDirectory(prefix="bench-home-big-") as big, \
            tempfile.TemporaryDirectory(prefix="bench-home-empty-") as empty:
        started = time.perf_counter()
        folders = build_home(Path(big))
        built = time.perf_counter() - started
        homes = {"big": big, "empty": empty}
        for round_ in range(runs + 1):
            for key in ("big", "empty") if round_ % 2 else ("empty", "big"):
                org, agent, billing = single_org(latency)
                with serve(org) as base_url:
                    wall, code, _ = timed([part.format(agent=agent, queue=billing) for part in argv],
                                          environment(org, base_url) | {"HOME": homes[key]})
                assert code == 0 and len(org.transfers) == 1, (key, code, org.transfers)
                if round_:
                    walls[key].append(wall)
        leftovers = sorted(name for name in os.listdir(empty))
    return {"folders": folders, "built": built, "big": statistics.median(walls["big"]),
            "empty": statistics.median(walls["empty"]), "big_all": walls["big"], "empty_all": walls["empty"],
            "leftovers": leftovers}


def print_home(home: dict, runs: int) -> None:
    ratio = home["big"] / home["empty"]
    print(f"\n6. a real home: one transfer by --user-id, HOME of {home['folders']:,} folders (built in "
          f"{home['built']:.1f}s, removed after) vs an empty HOME, interleaved, medians of {runs} runs")
    print(f"   {'':<34}{'wall':>10}   ×(empty HOME)   goal")
    print(f"   {'HOME empty':<34}{home['empty'] * 1000:7.0f} ms   {1.0:13.2f}")
    print(f"   {'HOME with ' + format(home['folders'], ',') + ' folders':<34}{home['big'] * 1000:7.0f} ms   "
          f"{ratio:13.2f}   ≤ {HOME_GOAL:g}×  {'met' if ratio <= HOME_GOAL else 'NOT met'}")
    print(f"   (each run, ms: empty {' '.join(f'{w * 1000:.0f}' for w in home['empty_all'])}; "
          f"big {' '.join(f'{w * 1000:.0f}' for w in home['big_all'])}; the empty HOME holds "
          f"{', '.join(home['leftovers']) or 'nothing'} after the runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added to every request (default 0.05)")
    parser.add_argument("--calls", type=int, default=300, help="waiting calls in the bulk run (default 300)")
    parser.add_argument("--scale", type=float, default=10.0, help="time scale of the rate limit (default 10)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each single-call figure (median)")
    parser.add_argument("--follow-window", type=int, default=20, metavar="SECONDS",
                        help="the --follow window of section 5 (default 20)")
    parser.add_argument("--follow-every", type=float, default=0.5, metavar="SECONDS",
                        help="seconds between two arrivals in section 5 (default 0.5)")
    parser.add_argument("--home-runs", type=int, default=5, metavar="N",
                        help="runs of each side of section 6's real-home figure (median; default 5)")
    parser.add_argument("--only", choices=("follow", "home"),
                        help="run only this section (follow: section 5; home: section 6)")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.only == "follow":
        print(f"transfer_call.py benchmark: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
              f"{args.latency * 1000:.0f} ms injected latency")
        print_follow(bench_follow(args.latency, args.follow_window, args.follow_every), args.latency,
                     args.follow_window, args.follow_every)
        print(f"\nbenchmark took {time.perf_counter() - started:.0f}s")
        return
    if args.only == "home":
        print(f"transfer_call.py benchmark: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
              f"{args.latency * 1000:.0f} ms injected latency")
        print_home(bench_home(args.latency, args.home_runs), args.home_runs)
        print(f"\nbenchmark took {time.perf_counter() - started:.0f}s")
        return
    single = bench_single(args.latency, args.runs)
    startup = bench_startup(args.runs)
    bulk = bench_bulk(args.calls, args.latency, args.scale)
    floor = single["floor_wall"]
    print(f"transfer_call.py benchmark: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
          f"{args.latency * 1000:.0f} ms injected latency, medians of {args.runs} runs\n")
    print("1. one transfer by --user-id            wall ×floor   requests   SDK modules   peak RSS ×(SDK default)")
    print(f"   floor (5 round trips + bare start)  {1.00:9.2f}   {single['floor_requests']:>8.0f}")
    for key, label in (("script", "transfer_call.py"), ("sdk", "SDK, default urllib3 client")):
        print(f"   {label:<36}{single[key + '_wall'] / floor:9.2f}   {single[key + '_requests']:>8.0f}"
              f"   {single[key + '_modules']:>11.0f}   {single[key + '_rss'] / single['sdk_rss']:8.2f}"
              f" ({single[key + '_rss'] / 1024:.0f} MiB)")
    print(f"   transfer_call.py / SDK default: {single['script_wall'] / single['sdk_wall']:.2f}× the wall time; "
          f"{single['script_wall'] / startup['sdk_import']:.2f}× the time `import {SDK}` alone takes")
    wall = single["script_wall"]
    print(f"   split of transfer_call.py's wall: interpreter {single['bare'] / wall:.0%}, "
          f"SDK (lazy) load {single['split_imports'] / wall:.0%}, network waits {single['split_network'] / wall:.0%}, "
          f"verification pause {single['split_sleep'] / wall:.0%}, the script's own work "
          f"{single['split_overhead'] / wall:.1%} ({single['split_overhead'] * 1000:.0f} ms; "
          f"{single['split_first'] * 1000:.0f} ms in a process's first run, with lazy imports and one-time set-up)")
    rest = wall - single["bare"] - single["split_imports"] - single["split_network"] - single["split_sleep"] \
        - single["split_first"]
    print(f"   the rest, {rest / wall:.0%}: compiling the script, importing httpx and the standard library, "
          "the fake org's own handling")
    print("\n2. start-up                              ×(python -c pass)")
    for key, label in (("help", "--help"), ("config_error", "configuration error"), ("sdk_import", "import of the SDK alone")):
        print(f"   {label:<38}{startup[key] / startup['bare']:6.2f}")
    print(f"\n3. bulk: {args.calls} waiting calls, {RATE_LIMIT} requests per rolling minute, time ÷{args.scale:g}, "
          "figures per scaled-back minute")
    print("                                        calls/min  ×bound  requests/moved  429s  moved twice  moved")
    for condition, suffix in ((f"latency scaled with time ({args.latency * 1000 / args.scale:g} ms: "
                               f"a {args.latency * 1000:.0f} ms round trip)", ""),
                              (f"latency not scaled ({args.latency * 1000:.0f} ms: like a "
                               f"{args.latency * 1000 * args.scale:.0f} ms round trip)", "_slow")):
        print(f"   {condition}")
        for key, label, _, _ in BULK_RUNS[:2]:
            key += suffix
            moved = bulk[f"{key}_moved"] or 1
            print(f"     {label:<34}{bulk[f'{key}_per_minute']:10.0f} {bulk[f'{key}_per_minute'] / bulk['bound_per_minute']:7.2f}"
                  f" {bulk[f'{key}_requests'] / moved:15.2f} {bulk[f'{key}_429']:5.0f} {bulk[f'{key}_twice']:12.0f}"
                  f" {bulk[f'{key}_moved']:6.0f}")
        print(f"     transfer_call.py moves {bulk['script' + suffix + '_per_minute'] / max(bulk['naive' + suffix + '_per_minute'], 1e-9):.1f}× "
              "as many calls a minute as the sequential loop")
    print(f"   bound: {bulk['bound_per_minute']:.0f} calls/min (the limit ÷ 1 request per call); calls/min counts "
          "from the first API request to the last, verification included")
    print("   with a routing change (latency scaled)  calls/min  ×bound  requests/call   429s  twice  done")
    for key, label, _, _ in BULK_RUNS[4:]:
        done = bulk[f"{key}_moved"] or 1
        bound = RATE_LIMIT / FLOOR_REQUESTS[key]
        print(f"     {label:<37}{bulk[f'{key}_per_minute']:8.0f} {bulk[f'{key}_per_minute'] / bound:7.2f}"
              f" {bulk[f'{key}_requests'] / done:14.2f} {bulk[f'{key}_429']:6.0f} {bulk[f'{key}_twice']:6.0f}"
              f" {bulk[f'{key}_moved']:5.0f}")
    print(f"   bounds: {RATE_LIMIT // 2} calls/min moved and re-prioritised (2 requests each: the transfer and the "
          f"PATCH), {RATE_LIMIT // 3} with participant data too (3), {RATE_LIMIT // 2} changed in place (2: read "
          "live, then the PATCH); "
          "\"twice\": moved or changed twice")
    print("\n4. peak memory (max RSS)                ×(single-call SDK script)")
    print(f"   transfer_call.py, one call          {single['script_rss'] / single['sdk_rss']:9.2f}")
    print(f"   transfer_call.py, {args.calls} calls       {bulk['script_rss'] / single['sdk_rss']:9.2f}")
    print(f"   (single-call SDK script: {single['sdk_rss'] / 1024:.0f} MiB)")
    print_follow(bench_follow(args.latency, args.follow_window, args.follow_every), args.latency,
                 args.follow_window, args.follow_every)
    print_home(bench_home(args.latency, args.home_runs), args.home_runs)
    print(f"\nbenchmark took {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
