"""The README and .env.example stay true to the code: variables, exit codes, --help, the test command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import transfer_call

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
ENV_EXAMPLE = (ROOT / ".env.example").read_text()


def test_every_variable_is_documented_in_the_readme_and_env_example() -> None:
    for name in transfer_call.ENV_VARS:
        assert f"`{name}`" in README, name
        assert re.search(rf"^#? ?{name}=", ENV_EXAMPLE, re.MULTILINE), name


def test_every_exit_code_is_in_the_readme_table_and_in_help() -> None:
    table = README.split("\n| exit | meaning | retry? |\n", 1)[1].split("\n\n", 1)[0]
    for code in transfer_call.ExitCode:
        assert re.search(rf"^\| {int(code)} \| .+ \| .+ \|$", table, re.MULTILINE), code
        assert re.search(rf"^  {int(code)} +\S", transfer_call.EXIT_CODE_HELP, re.MULTILINE), code


def test_every_flag_of_help_is_in_the_readme_and_the_readme_is_at_most_25_kb() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "transfer_call.py"), "--help"], capture_output=True,
                          text=True, env={**os.environ, "COLUMNS": "100"}, timeout=30)
    flags = set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", done.stdout.split("options:", 1)[1].split("examples:")[0]))
    assert {"--follow", "--list", "--media", "-q"} <= flags
    assert [flag for flag in sorted(flags) if not re.search(rf"`{re.escape(flag)}(?![\w-])", README)] == []
    assert len(README.encode()) <= 25_000


def test_ci_runs_exactly_the_readme_test_command() -> None:
    section = README.split("## Running the tests", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    assert section.strip() == "tests/run"
    assert (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1] == "tests/run"
    runner = (ROOT / "tests" / "run").read_text()
    assert "requirements.txt" in runner and "requirements-dev.txt" in runner and "python3 -m venv .venv" in runner


def test_the_readme_stands_alone_and_documents_every_status() -> None:
    assert not re.search(r"\.\./\w", README), "the README must not point outside the repository"
    for status in ("transferred", "skipped", "failed", "not-sent", "dry-run"):
        assert f"`{status}`" in README, status
    assert "exact name" not in README.lower() and "exact email" not in README.lower()  # names ignore case


def test_the_demo_org_has_the_ids_the_readme_shows() -> None:
    import fake_org

    fake_org.IDS.seed(2026)  # as fake_org.demo() does
    try:
        scenario = fake_org.build_scenario(transfer_delay=0.3, latency=0.05)
    finally:
        fake_org.IDS.seed()  # the other tests' ids stay random

    for name in ("agent", "agent_call", "waiting_call", "support", "billing"):
        assert getattr(scenario, name) in README, name


def script_metadata() -> dict:
    """The PEP 723 `# /// script` block at the top of transfer_call.py, parsed."""
    import tomllib

    text = (ROOT / "transfer_call.py").read_text()
    block = re.search(r"^# /// script\n((?:#.*\n)*?)# ///$", text, re.MULTILINE)
    assert block, "transfer_call.py has no # /// script block"
    return tomllib.loads("".join(line[2:] + "\n" for line in block.group(1).splitlines()))


def test_the_script_block_pins_what_requirements_txt_pins() -> None:
    metadata = script_metadata()
    pins = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert metadata["dependencies"] == pins
    assert metadata["requires-python"] == ">=3.10"


def test_uv_runs_the_script_with_no_venv(tmp_path) -> None:
    import shutil

    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed here: `uv run transfer_call.py --help` was not tried")
    done = subprocess.run([uv, "run", "--no-project", str(ROOT / "transfer_call.py"), "--help"], capture_output=True,
                          text=True, timeout=600, cwd=tmp_path, env={**os.environ, "UV_CACHE_DIR": str(tmp_path / "uv")})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: transfer_call.py")


def test_the_readme_exit_table_gives_the_retry_advice_of_the_exit_code_table() -> None:
    """ExitCode's rows make --help's table; the README's table says the same "retry?" for each code."""
    table = README.split("\n| exit | meaning | retry? |\n", 1)[1].split("\n\n", 1)[0]
    rows = dict(re.findall(r"^\| (\d+) \| .+ \| (.+) \|$", table, re.MULTILINE))
    for code in transfer_call.ExitCode:
        advice = re.match(r"(yes|no|-)", rows[str(int(code))]).group(1)
        assert advice == (code.retry.split(",")[0].split(";")[0].split(":")[0] or "-"), code
        assert f"  {int(code):<5}{code.meaning[:40]}" in transfer_call.EXIT_CODE_HELP, code
