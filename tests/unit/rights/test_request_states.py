"""The request state machine: the one table of allowed changes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vault.errors import FailedPreconditionError
from vault.rights.request_base import new_request_id
from vault.rights.request_states import (
    TRANSITIONS,
    RequestEvent,
    RequestState,
    is_request_id,
    next_state,
)
from vault.rights.requests import normalize_code

RID = "DSR-20270101-ABCDEFGHJK"


def test_the_happy_paths() -> None:
    s = next_state(RID, RequestState.AWAITING_VERIFICATION, RequestEvent.VERIFY)
    assert s is RequestState.PENDING_DECISION
    assert next_state(RID, s, RequestEvent.APPROVE) is RequestState.FULFILLED
    assert next_state(RID, s, RequestEvent.REJECT) is RequestState.REJECTED
    assert next_state(RID, s, RequestEvent.CANCEL) is RequestState.CANCELLED


@pytest.mark.parametrize("event", [RequestEvent.APPROVE, RequestEvent.REJECT])
def test_an_unverified_request_cannot_be_decided(event: RequestEvent) -> None:
    with pytest.raises(FailedPreconditionError) as raised:
        next_state(RID, RequestState.AWAITING_VERIFICATION, event)
    [violation] = raised.value.violations
    assert (violation.type, violation.subject) == ("VERIFICATION", f"requests/{RID}")


@given(st.sampled_from(list(RequestState)), st.sampled_from(list(RequestEvent)))
def test_every_change_is_in_the_table_or_refused(state: RequestState, event: RequestEvent) -> None:
    if (state, event) in TRANSITIONS:
        assert next_state(RID, state, event) is TRANSITIONS[(state, event)]
    else:
        with pytest.raises(FailedPreconditionError) as raised:
            next_state(RID, state, event)
        assert raised.value.violations


@given(
    st.sampled_from([s for s in RequestState if s.is_final]), st.sampled_from(list(RequestEvent))
)
def test_final_states_never_change(state: RequestState, event: RequestEvent) -> None:
    with pytest.raises(FailedPreconditionError):
        next_state(RID, state, event)


def test_request_ids_are_case_references_and_nothing_else_passes() -> None:
    from datetime import UTC, datetime

    made = new_request_id(datetime(2027, 1, 2, tzinfo=UTC))
    assert is_request_id(made)
    assert made.startswith("DSR-20270102-")
    for bad in ("", "dsr-20270102-ABCDEFGHJK", "DSR-2027-ABC", "ada@example.com", RID + "x"):
        assert not is_request_id(bad)


def test_codes_are_read_as_typed_by_a_person() -> None:
    assert normalize_code(" abcde-fghjk ") == "ABCDEFGHJK"
