"""The reduced fault matrix (``make faults`` runs the full one): every case must hold.

The cases run together in one emulator (each on its own pair) in a module fixture; each test then
reports one case, so a failure names the Task state, the fault and what went wrong.
"""

from __future__ import annotations

import pytest

from .matrix import KINDS, TASKS, Case, Outcome, matrix_emulator, reduced_cases, render, run_matrix

CASES = reduced_cases()


@pytest.fixture(scope="module")
def outcomes() -> dict[str, Outcome]:
    with matrix_emulator() as emulator:
        ran = run_matrix(emulator, CASES)
    print("\n" + render(ran))
    return {o.case.id: o for o in ran}


def test_the_reduced_matrix_covers_every_task_and_every_fault() -> None:
    assert {c.task.key for c in CASES} == {t.key for t in TASKS}
    assert {c.kind for c in CASES} == set(KINDS)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_the_case_ends_with_exact_weights_and_a_terminal_record(
    case: Case, outcomes: dict[str, Outcome]
) -> None:
    outcome = outcomes[case.id]
    assert outcome.holds, f"{case.task.state} under {case.kind}: {'; '.join(outcome.problems)}"
    assert outcome.acted >= 1
    assert outcome.status not in ("-", "RUNNING", "STARTING", "PAUSED", "ROLLING_BACK")
