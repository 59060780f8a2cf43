"""Every transcript in the README is replayed against the demo org, ids and times masked: a drift fails the suite.

A transcript is a code block whose first line starts with "$ ". Its commands run in order, each
block after the one before, against one demo org started as `tests/fake_org.py` starts it (the
same ids every time), as a user would type them in a fresh shell with the virtual environment
active. A block right after a line `<!-- demo: OPTIONS -->` runs against a fresh demo org started
with those options (for instance `--without PERMISSION`), and the blocks after it go on with the
first org. `... (N more lines like these)` stands for any number of lines. Output is compared
as a terminal shows it: stdout and stderr in the order written, with no times at the start of
stderr's lines.

To write the README's transcripts anew after a change of output: `python tests/test_readme.py`,
then read the diff.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fake_org import build_demo, script_environment, serve  # noqa: E402

README = ROOT / "README.md"
SHOWN_URL = "http://127.0.0.1:8089"  # the demo org's address as the README shows it
BLOCK = re.compile(r"(?:<!-- demo: (?P<options>[^>]*) -->\n)?```\n(?P<body>\$ .*?)```", re.DOTALL)
MORE = re.compile(r"^\.\.\. \((\d+) more lines? like (?:these|this)[^)]*\)$")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ANY_UUID = UUID.pattern
NUMBER = r"\d+(?:\.\d+)?"
KNOWN: set[str] = set()  # the demo org's ids at its start: the same every time, so they must match as printed


def line_pattern(line: str, *, loose: bool = False, any_id: bool = False) -> str:
    """A regex for one README line: ids made during a run, times, durations and rates stand for any; the demo's own
    ids, statuses, counts and words must be as printed. `loose` (a --follow window, whose arrivals vary): counts too."""
    ids = UUID.findall(line)
    pattern = re.escape(UUID.sub("IDHERE", line))  # ids out of the way of escaping, then each one back
    for found in ids:
        pattern = pattern.replace("IDHERE", re.escape(found) if found in KNOWN and not any_id else ANY_UUID, 1)
    pattern = re.sub(r"\d{4}\\-\d\d\\-\d\dT\d\d:\d\d:\d\d(?:\\\.\d+)?Z", lambda m: "[0-9T:.Z-]+", pattern)
    pattern = re.sub(r"\b\d+(?:\\\.\d+)?(?=s\b|ms\b|\\ calls/min|\\ per\\ call|\\ requests?\b)",
                     lambda m: NUMBER, pattern)
    pattern = re.sub(r'("(?:elapsedMs|waitingSeconds|requests)":\\ )\d+', lambda m: m.group(1) + r"\d+", pattern)
    if loose and line.startswith(("transfer_call: done:", "transfer_call: moving")):
        pattern = re.sub(r"(?<![\w\\])\d+(?:\\\.\d+)?", lambda m: NUMBER, pattern)
    return pattern


@contextlib.contextmanager
def demo_org(options: str = "") -> Iterator[tuple[str, dict[str, str]]]:
    """A demo org as `tests/fake_org.py OPTIONS` serves it, on a free port: (its URL, the environment to use it)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=12)
    parser.add_argument("--without", action="append", default=[])
    parser.add_argument("--arrive-every", type=float)
    args = parser.parse_args(shlex.split(options))
    scenario, _ = build_demo(args.calls, tuple(args.without))
    org = scenario.org
    KNOWN.update(UUID.findall(json.dumps([org.conversations, org.queues, org.users, org.skills, org.languages])))
    stop = threading.Event()

    def arrive() -> None:
        n = 0
        while args.arrive_every and not stop.wait(args.arrive_every):
            scenario.org.add_waiting_call(scenario.support, caller=f"+1555060{n:04d}")
            n += 1

    with serve(scenario.org) as base_url, tempfile.TemporaryDirectory() as home:
        bin_dir = Path(home) / "bin"
        bin_dir.mkdir()
        python = bin_dir / "python"  # the interpreter with the requirements, as in an activated virtual environment
        python.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} \"$@\"\n")
        python.chmod(0o755)
        env = script_environment(scenario.org, base_url, HOME=home, PATH=f"{bin_dir}:{os.environ['PATH']}")
        thread = threading.Thread(target=arrive, daemon=True)
        thread.start()
        try:
            yield base_url, env
        finally:
            stop.set()


def replay(body: str, base_url: str, env: dict[str, str], cwd: str) -> tuple[str, list[str]]:
    """Run a transcript's commands: the transcript they print now, and the commands that failed unannounced (a
    command's exit code must be 0 unless the transcript shows it with `echo $?`)."""
    out, code, unannounced = [], 0, []
    commands = [line[2:] for line in body.splitlines() if line.startswith("$ ")]
    for n, command in enumerate(commands):
        out.append(f"$ {command}")
        if command == "echo $?":
            out.append(str(code))
            continue
        done = subprocess.run(["bash", "-c", command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=env, cwd=cwd, timeout=300, stdin=subprocess.DEVNULL)
        code = done.returncode
        if code != 0 and commands[n + 1:n + 2] != ["echo $?"]:
            unannounced.append(f"{command} (exit {code})")
        text = re.sub(r"^\S+Z (?=transfer_call: )", "", done.stdout, flags=re.MULTILINE)  # as on a terminal
        out += text.replace(base_url, SHOWN_URL).splitlines()
    return "\n".join(out) + "\n", unannounced


def matches(shown: str, actual: str) -> bool:
    """The README's transcript matches what the commands print now; "... (N more lines like these)" stands for N
    more lines of the line before's shape (in a --follow window, whose arrivals and checks vary: one or more lines
    that begin as the line before does)."""
    loose = "--follow" in shown
    lines, pattern = shown.splitlines(), ""
    for i, line in enumerate(lines):
        more = MORE.match(line)
        if more and loose and i:  # lines that begin as the line before does, in whatever order they come
            pattern += f"(?:{re.escape(lines[i - 1].split(' ', 1)[0])} [^\n]*\n)+"
        elif more and i:
            pattern += f"(?:{line_pattern(lines[i - 1], any_id=True)}\n){{{more.group(1)}}}"
        else:  # the first line of a group stands for the group, in whatever order it comes: any ids
            grouped = i + 1 < len(lines) and MORE.match(lines[i + 1]) is not None
            pattern += line_pattern(line, loose=loose, any_id=grouped) + "\n"
    return re.fullmatch(pattern, actual) is not None


def condensed(transcript: str) -> str:
    """A transcript with each run of three or more lines of one shape cut to its first line and "... (N more lines
    like these)"."""
    lines, out = transcript.splitlines(), []
    shape = lambda line: re.sub(ANY_UUID + "|" + NUMBER, "", line)  # noqa: E731
    i = 0
    while i < len(lines):
        j = i
        while j + 1 < len(lines) and not lines[j + 1].startswith("$ ") and shape(lines[j + 1]) == shape(lines[i]):
            j += 1
        out.append(lines[i])
        if j - i >= 2:
            out.append(f"... ({j - i} more lines like these)")
        elif j > i:
            out += lines[i + 1:j + 1]
        i = j + 1
    return "\n".join(out) + "\n"


def transcripts(readme: str) -> list[re.Match[str]]:
    return list(BLOCK.finditer(readme))


def run_all(readme: str) -> list[tuple[re.Match[str], tuple[str, list[str]]]]:
    """Each transcript of the README with what its commands print now, and those that failed unannounced."""
    results = []
    with demo_org() as (base_url, env), tempfile.TemporaryDirectory() as cwd:
        (Path(cwd) / "transfer_call.py").symlink_to(ROOT / "transfer_call.py")  # as in a clone
        for block in transcripts(readme):
            if block["options"] is None:
                results.append((block, replay(block["body"], base_url, env, cwd)))
                continue
            with demo_org(block["options"]) as (fresh_url, fresh_env):
                results.append((block, replay(block["body"], fresh_url, {**fresh_env, "HOME": env["HOME"]}, cwd)))
    return results


def test_every_readme_transcript_is_what_the_commands_print() -> None:
    readme = README.read_text()
    assert len(transcripts(readme)) >= 6
    for block, (actual, unannounced) in run_all(readme):
        assert matches(block["body"], actual), f"README transcript drifted:\n--- README\n{block['body']}--- now\n{actual}"
        assert unannounced == [], f"a command failed with no `echo $?` after it to say so: {unannounced}"


def test_the_demo_command_runs_the_tour_and_leaves_nothing_behind() -> None:
    import socket

    done = subprocess.run([str(ROOT / "demo")], capture_output=True, text=True, timeout=600, cwd=ROOT,
                          stdin=subprocess.DEVNULL, env={k: v for k, v in os.environ.items()
                                                         if not k.startswith(("GENESYS_", "TARGET_", "SOURCE_"))})
    assert done.returncode == 0, done.stdout + done.stderr
    url = re.search(r"runs on http://127\.0\.0\.1:(\d+)", done.stdout)
    assert url and "(exit 1" not in done.stdout and "(exit 2" not in done.stdout
    assert "transferred" in done.stdout and "Where the calls are now" in done.stdout
    with socket.socket() as probe:  # the demo org's port is closed again
        assert probe.connect_ex(("127.0.0.1", int(url.group(1)))) != 0
    # The tour's own runs of the tool end before it does (subprocess.run); its org is a thread of its process.
    left = subprocess.run(["pgrep", "-f", "fake_org.py --tour"], capture_output=True, text=True)
    assert left.stdout.strip() == "", left.stdout  # (a demo run by someone else at the same moment would show too)


def main() -> None:
    """Write anew the README's transcripts that no longer match what their commands print."""
    readme = README.read_text()
    started = time.monotonic()
    for block, (actual, unannounced) in reversed(run_all(readme)):
        if unannounced:
            print(f"these failed: {unannounced}", file=sys.stderr)
        if matches(block["body"], actual):
            continue
        print(f"rewriting the transcript at line {readme[:block.start()].count(chr(10)) + 1}", file=sys.stderr)
        readme = readme[:block.start("body")] + condensed(actual) + readme[block.end("body"):]
    README.write_text(readme)
    print(f"done in {time.monotonic() - started:.0f}s; read `git diff README.md`", file=sys.stderr)


if __name__ == "__main__":
    main()
