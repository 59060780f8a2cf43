"""Fixtures: a clean environment, a fake org with agents, queues and calls, and ways to run the script."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import transfer_call  # noqa: E402
from fake_org import SETTING_PREFIXES, FakeOrg, Scenario, build_scenario, script_environment, serve  # noqa: E402

SCRIPT = Path(__file__).resolve().parent.parent / "transfer_call.py"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No GENESYS_*/TARGET_* leaks in, HOME (where runs keep their locks) and the working folder are empty temp dirs."""
    for name in list(os.environ):
        if name.startswith(SETTING_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def scenario() -> Scenario:
    return build_scenario()


@dataclasses.dataclass
class Run:
    """A run's exit code and output; `err` without the UTC times that start each line when stderr is no terminal
    (`stamped_err` keeps them)."""

    code: int
    out: str
    stamped_err: str

    @property
    def err(self) -> str:
        return LOG_TIME.sub("", self.stamped_err)


LOG_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (?=transfer_call: )", re.MULTILINE)


@pytest.fixture
def run_inprocess(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """Run main(argv) against an org through httpx.MockTransport, with retry sleeps recorded, not slept."""
    monkeypatch.setattr(transfer_call, "POLL_INTERVAL", 0.01)
    monkeypatch.setattr(transfer_call, "ANALYTICS_RETRY_DELAY", 0.01)
    monkeypatch.setattr(transfer_call, "SETTLE_TIME", 0.05)
    sleeps: list[float] = []

    def run(org: FakeOrg, *argv: str, env: dict[str, str] | None = None, real_sleep: bool = False) -> Run:
        settings_env = {"GENESYS_CLIENT_ID": org.client_id, "GENESYS_CLIENT_SECRET": org.client_secret,
                        "GENESYS_API_HOST": "https://api.fake.test", **(env or {})}
        for name, value in settings_env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(transfer_call, "make_org", functools.partial(
            ORIGINAL_MAKE_API_CLIENT, transport=httpx.MockTransport(org.handle),
            sleep=time.sleep if real_sleep else sleeps.append))
        code = transfer_call.main(list(argv))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    run.sleeps = sleeps
    return run


ORIGINAL_MAKE_API_CLIENT = transfer_call.make_org


@pytest.fixture
def served():
    """Serve an org on 127.0.0.1 for subprocess runs; yields a function org -> base URL."""
    stack = []

    def start(org: FakeOrg) -> str:
        context = serve(org)
        stack.append(context)
        return context.__enter__()

    yield start
    for context in stack:
        context.__exit__(None, None, None)


def run_script(base_url: str, org: FakeOrg, *argv: str, env: dict[str, str] | None = None,
               timeout: float = 60) -> Run:
    """Run `python transfer_call.py ...` as a user would, against the org served at base_url."""
    done = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True,
                          env=script_environment(org, base_url, **(env or {})), timeout=timeout, stdin=subprocess.DEVNULL)
    return Run(done.returncode, done.stdout, done.stderr)


def json_lines(out: str) -> list[dict]:
    """The --json result lines of a run (or --check's rows), without the run's closing summary record."""
    return [record for record in map(json.loads, out.splitlines()) if record.get("summary") is not True]


def summary_record(out: str) -> dict:
    """The --json summary record that ends every run's stdout."""
    record = json.loads(out.splitlines()[-1])
    assert record["summary"] is True
    return record


def final_records(out: str) -> list[dict]:
    """The --json records of a run, the last one of each call (a moved call's first line comes before its check)."""
    records: dict[str, dict] = {}
    for record in map(json.loads, out.splitlines()):
        if record.get("summary") is True:  # the run's closing record
            continue
        records.pop(record["conversationId"], None)
        records[record["conversationId"]] = record
    return list(records.values())


def final_lines(out: str) -> list[str]:
    """The text result lines of a run, the last one of each call."""
    lines: dict[str, str] = {}
    for line in out.splitlines():
        conversation_id = line.split(" ", 2)[1]
        lines.pop(conversation_id, None)
        lines[conversation_id] = line
    return list(lines.values())
