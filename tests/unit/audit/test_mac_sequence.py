"""`MacCheck.sequence` (MAC states worked out per chunk, possibly in another process)
finds what checking the leaves one by one in order finds, however the log is chunked."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from audit.leaf_scan import LeafProblem, MacCheck
from audit.mac import EntryMac

STATES = st.lists(st.sampled_from([0, 1, 2]), max_size=60)


def _one_by_one(states: list[int]) -> tuple[tuple[str, int] | None, int, int]:
    """The rule, leaf after leaf: (first problem, legacy leaves, MACs checked)."""
    legacy = checked = 0
    started = False
    for position, state in enumerate(states):
        if state == 0 and not started:
            legacy += 1
            continue
        started = True
        if state == 0:
            return ("entry has no MAC (later than entries with one)", position), legacy, checked
        if state == 2:
            return ("entry MAC does not verify", position), legacy, checked
        checked += 1
    return None, legacy, checked


@given(states=STATES, cuts=st.lists(st.integers(0, 60), max_size=6))
def test_chunked_states_give_what_leaf_by_leaf_gives(states: list[int], cuts: list[int]) -> None:
    check = MacCheck(EntryMac(b"k" * 32))
    bounds = sorted({0, len(states), *(cut for cut in cuts if cut < len(states))})
    found: LeafProblem | None = None
    for low, high in itertools.pairwise(bounds):
        found = check.sequence(low, bytes(states[low:high]))
        if found is not None:
            break
    problem, legacy, checked = _one_by_one(states)
    assert (None if found is None else (found.problem, found.position)) == problem
    assert (check.legacy, check.checked) == (legacy, checked)
