"""The contract the lazy SDK loader relies on, pinned so that an SDK upgrade fails here, not at 3 a.m.

transfer_call.load_sdk() registers PureCloudPlatformClientV2 and its models/apis subpackages as lazy
modules built from the `from .x import Y` lines of their __init__ files, and sends every request
through ApiClient.call_api with the (method, path, answer model) of OPERATIONS.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

import transfer_call
from conftest import SCRIPT, Scenario
from fake_org import script_environment

SDK_ROOT = Path(importlib.util.find_spec(transfer_call.SDK_PACKAGE).submodule_search_locations[0])
PRIMITIVES = {"str", "int", "float", "bool", "datetime", "date", "object", "LocalDateTime"}
# What each __init__ holds besides `from .x import Y` lines; anything else means the layout changed.
ALLOWED_OTHER_LINES = {"from __future__ import absolute_import", "configuration = Configuration()"}


@pytest.mark.parametrize("folder", ["", "models", "apis"])
def test_the_sdk_init_files_are_made_of_from_import_lines_the_loader_can_read(folder: str) -> None:
    init = SDK_ROOT / folder / "__init__.py"
    lines = [line.strip() for line in init.read_text().splitlines() if line.strip() and not line.startswith("#")]
    exports = transfer_call.SDK_EXPORT.findall(init.read_text())

    assert [line for line in lines if not transfer_call.SDK_EXPORT.fullmatch(line)
            and line not in ALLOWED_OTHER_LINES] == []
    assert len(exports) > {"": 6000, "models": 6000, "apis": 100}[folder]
    for submodule, _ in exports:
        assert (SDK_ROOT / folder / (submodule.replace(".", "/") + ".py")).is_file(), submodule


def model_names(name: str, seen: set[str]) -> set[str]:
    """The model and every model its fields can hold, as the deserializer will ask for them."""
    name = re.sub(r"^(list\[|dict\([^,]*, )", "", name).rstrip("])")
    if name in PRIMITIVES or name in seen:
        return seen
    seen.add(name)
    for field_type in getattr(transfer_call.load_sdk().models, name)().swagger_types.values():
        model_names(field_type, seen)
    return seen


def test_every_class_the_script_uses_resolves_through_the_lazy_modules() -> None:
    sdk = transfer_call.load_sdk()
    assert sdk.ApiClient.__name__ == "ApiClient" and issubclass(sdk.ApiException, Exception)
    assert sdk.AbstractHttpClient.__name__ == "AbstractHttpClient"
    used: set[str] = set()
    for _, _, answer, _ in transfer_call.OPERATIONS.values():
        if answer:
            model_names(answer, used)
    for name in ("ErrorBody", "TransferToQueueRequest", "ConversationQuery", "UserSearchRequest"):
        model_names(name, used)
    assert len(used) > 40  # Conversation alone reaches dozens
    for name in used:
        assert getattr(sdk.models, name).__name__ == name


def sdk_operation(name: str) -> tuple[str, str, str | None]:
    """(method, path, answer model) of an SDK API method, read from the SDK's source."""
    for module in (SDK_ROOT / "apis").glob("*_api.py"):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name == name:
                source = ast.get_source_segment(module.read_text(), node)
                path = re.search(r"resource_path = '([^']+)'", source).group(1)
                method = re.search(r"call_api\(resource_path, '(\w+)'", source).group(1)
                answer = re.search(r"response_type=(?:'([^']+)'|None)", source).group(1)
                return method, path, answer
    raise AssertionError(f"the SDK has no API method {name}")


@pytest.mark.parametrize("name", sorted(transfer_call.OPERATIONS))
def test_every_request_is_one_the_sdk_defines(name: str) -> None:
    assert transfer_call.OPERATIONS[name][:3] == sdk_operation(name)


# Peak memory from /proc's VmHWM, which belongs to this program's own memory map: getrusage's
# ru_maxrss can carry the parent's peak over a fork and exec (pytest's, here).
RUN_AND_COUNT = """\
import re, runpy, sys
sys.argv = [sys.argv[1], *sys.argv[2:]]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as exit:
    code = exit.code
loaded = [m for m in sys.modules if m.startswith("PureCloudPlatformClientV2")]
peak = re.search(r"VmHWM:\\s*(\\d+) kB", open("/proc/self/status").read()).group(1)
print(code, len(loaded), sum(".apis." in m for m in loaded), peak)
"""


def test_a_transfer_loads_a_few_dozen_sdk_modules_and_no_api_class(scenario: Scenario, served) -> None:
    org = scenario.org
    done = subprocess.run([sys.executable, "-c", RUN_AND_COUNT, str(SCRIPT), "--user-id", scenario.agent,
                           "--queue-id", scenario.billing, "-q"], capture_output=True, text=True, timeout=120,
                          env=script_environment(org, served(org)), stdin=subprocess.DEVNULL)

    code, modules, api_modules, max_rss_kib = map(int, done.stdout.split()[-4:])
    assert code == 0, done.stderr
    assert org.queue_of(scenario.agent_call) == scenario.billing
    assert modules < 60 and api_modules == 0  # the whole package is over 6,800 modules
    assert max_rss_kib < 120 * 1024  # a safety net: about 40 MiB here, against over 200 MiB for the full SDK


def test_an_sdk_the_program_already_imported_is_used_as_it_is(tmp_path: Path) -> None:
    code = ("import sys, PureCloudPlatformClientV2 as full; sys.path.insert(0, %r); import transfer_call; "
            "sdk = transfer_call.load_sdk(); "
            "print(sdk.ApiClient is full.ApiClient, sdk.models is full.models, "
            "sys.modules['PureCloudPlatformClientV2'] is full)" % str(SCRIPT.parent))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})

    assert done.stdout.split() == ["True", "True", "True"], done.stderr


def test_the_sdk_logger_never_writes_the_token_even_when_its_config_asks_for_trace(
        scenario: Scenario, served, tmp_path: Path) -> None:
    org = scenario.org
    config = tmp_path / ".genesyscloudpython" / "config"
    config.parent.mkdir()
    config.write_text("[logging]\nlog_level = trace\nlog_to_console = true\nlog_request_body = true\n")
    done = subprocess.run([sys.executable, str(SCRIPT), "--user-id", scenario.agent, "--queue-id", scenario.billing],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                          env=script_environment(org, served(org), HOME=str(tmp_path)))

    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert org.issued_tokens and not any(token in output for token in org.issued_tokens)
    assert "Authorization" not in output and "Bearer" not in output


WATCHERS = """
import sys, threading
sys.path.insert(0, sys.argv[1])
import transfer_call
sdk = transfer_call.load_sdk()
sdk.ApiClient(host="https://api.fake.test")
configuration = sys.modules["PureCloudPlatformClientV2.configuration"].Configuration()
print(sorted(thread.name for thread in threading.enumerate()), configuration._observer, configuration.live_reload_config)
"""


@pytest.mark.parametrize("config", [None, "[logging]\nlog_level = none\n"])
def test_the_sdk_never_watches_the_home_folder_or_its_config(tmp_path: Path, config: str | None) -> None:
    """The SDK's Configuration starts a watchdog observer on ~/.genesyscloudpython, or on the whole home folder when
    that is missing (seconds of walking at every start): the run starts none, whether the file is there or not."""
    for name in ("projects/app/node_modules/a", "projects/app/node_modules/b", "Documents"):
        (tmp_path / name).mkdir(parents=True)
    if config is not None:
        (tmp_path / ".genesyscloudpython").mkdir()
        (tmp_path / ".genesyscloudpython" / "config").write_text(config)
    done = subprocess.run([sys.executable, "-c", WATCHERS, str(SCRIPT.parent)], capture_output=True, text=True,
                          timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["['MainThread']", "None", "False"], done.stdout
