"""Every case of the fault drill (tests/fault_drill.py): subprocess runs against a misbehaving fake org."""

from __future__ import annotations

import concurrent.futures

import pytest

from fault_drill import CASES, Case, Outcome, run_case


@pytest.fixture(scope="session")
def drill() -> dict[str, Outcome]:
    """Run the whole drill once, four cases at a time (each is a subprocess that imports the SDK)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        return {outcome.case.name: outcome for outcome in pool.map(run_case, CASES)}


def test_the_drill_has_at_least_thirty_cases_with_distinct_names() -> None:
    assert len(CASES) >= 30
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_fault_drill_case(case: Case, drill: dict[str, Outcome]) -> None:
    assert drill[case.name].problems == []
