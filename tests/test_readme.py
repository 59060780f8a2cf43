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
MORE = re.compile(r"^\.\.\. \(\d+ more lines? like (?:these|this)[^)]*\)$")
MASKS = [  # what changes from run to run: ids made during a run, times, durations, counts that depend on timing
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<id>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z"), "<time>"),
    (re.compile(r"\b\d+(?:\.\d+)?(?=s\b|ms\b| calls/min| per call| requests?\b)"), "<n>"),
    (re.compile(r'("(?:elapsedMs|waitingSeconds|requests)": )\d+'), r"\1<n>"),
    (re.compile(r"(^transfer_call: done: .*)", re.MULTILINE), lambda m: re.sub(r"\d+(?:\.\d+)?", "<n>", m.group(1))),
]


def mask(text: str) -> str:
    for pattern, replacement in MASKS:
        text = pattern.sub(replacement, text)
    return text


@contextlib.contextmanager
def demo_org(options: str = "") -> Iterator[tuple[str, dict[str, str]]]:
    """A demo org as `tests/fake_org.py OPTIONS` serves it, on a free port: (its URL, the environment to use it)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=12)
    parser.add_argument("--without", action="append", default=[])
    parser.add_argument("--arrive-every", type=float)
    args = parser.parse_args(shlex.split(options))
    scenario, _ = build_demo(args.calls, tuple(args.without))
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


def replay(body: str, base_url: str, env: dict[str, str], cwd: str) -> str:
    """Run a transcript's commands; return the transcript they print now (commands, then their output)."""
    out, code = [], 0
    for line in body.splitlines():
        if not line.startswith("$ "):
            continue
        command = line[2:]
        out.append(line)
        if command == "echo $?":
            out.append(str(code))
            continue
        done = subprocess.run(["bash", "-c", command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=env, cwd=cwd, timeout=300, stdin=subprocess.DEVNULL)
        code = done.returncode
        text = re.sub(r"^\S+Z (?=transfer_call: )", "", done.stdout, flags=re.MULTILINE)  # as on a terminal
        out += text.replace(base_url, SHOWN_URL).splitlines()
    return "\n".join(out) + "\n"


def condensed(transcript: str) -> str:
    """A transcript with each run of three or more lines of one shape (ids and times aside) cut to its first line and
    "... (N more lines like these)"."""
    lines, out = transcript.splitlines(), []
    shape = lambda line: re.sub(r"<id>|<n>|<time>", "", mask(line))  # noqa: E731
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


def matches(shown: str, actual: str) -> bool:
    """The README's transcript (with its "... (N more lines like these)") matches what the commands print now."""
    pattern = "".join(r"(?:.*\n)*?" if MORE.match(line) else re.escape(mask(line)) + r"\n"
                      for line in shown.splitlines())
    return re.fullmatch(pattern, mask(actual)) is not None


def transcripts(readme: str) -> list[re.Match[str]]:
    return list(BLOCK.finditer(readme))


def run_all(readme: str) -> list[tuple[re.Match[str], str]]:
    """Each transcript of the README with what its commands print now."""
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
    for block, actual in run_all(readme):
        assert matches(block["body"], actual), f"README transcript drifted:\n--- README\n{block['body']}--- now\n{actual}"


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
    left = subprocess.run(["pgrep", "-f", "fake_org.py --tour"], capture_output=True, text=True)
    assert left.stdout.strip() == "", left.stdout


def main() -> None:
    """Write the README's transcripts anew, keeping each one's "... (N more lines like these)" lines where they were."""
    readme = README.read_text()
    started = time.monotonic()
    for block, actual in reversed(run_all(readme)):
        if matches(block["body"], actual):
            continue
        print(f"rewriting the transcript at line {readme[:block.start()].count(chr(10)) + 1}", file=sys.stderr)
        readme = readme[:block.start("body")] + condensed(actual) + readme[block.end("body"):]
    README.write_text(readme)
    print(f"done in {time.monotonic() - started:.0f}s; read `git diff README.md`", file=sys.stderr)


if __name__ == "__main__":
    main()
