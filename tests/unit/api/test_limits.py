"""The request-shape limits: map entries counted on the wire, violations capped, slots."""

from __future__ import annotations

import contextlib
from types import MappingProxyType

import pytest
from customer_vault_client.gen.customervault.v1 import vault_pb2 as pb
from hypothesis import given
from hypothesis import strategies as st

from vault.api.errors import bad_request
from vault.api.limits import CallLimits, MalformedWireError, StreamSlots, map_violations
from vault.errors import FieldViolation
from vault.principal import Principal

BATCH = pb.BatchCreateSubjectsRequest.DESCRIPTOR
UPDATE = pb.UpdateSubjectRequest.DESCRIPTOR


def _batch(*sizes: int) -> bytes:
    items = [pb.SubjectInput(fields={f"f{i}": "v" for i in range(n)}) for n in sizes]
    return pb.BatchCreateSubjectsRequest(items=items).SerializeToString()


def test_maps_within_the_limits_pass() -> None:
    assert map_violations(_batch(3, 10, 0), BATCH, per_map=10, total=13) == []


def test_the_first_map_over_the_limit_is_named_by_its_path() -> None:
    assert map_violations(_batch(3, 11, 12), BATCH, per_map=10, total=100) == [
        FieldViolation("items[1].fields", "more than 10 entries")
    ]


def test_all_maps_together_are_counted() -> None:
    assert map_violations(_batch(10, 10, 10), BATCH, per_map=10, total=25) == [
        FieldViolation("request", "more than 25 map entries in all")
    ]


def test_a_top_level_map_is_counted() -> None:
    request = pb.UpdateSubjectRequest(
        subject_id="s", set_fields={f"f{i}": "v" for i in range(5)}, clear_fields=["a", "b"]
    )
    assert map_violations(request.SerializeToString(), UPDATE, per_map=4, total=100) == [
        FieldViolation("set_fields", "more than 4 entries")
    ]


@given(st.binary(max_size=200))
def test_any_bytes_are_walked_or_refused_as_malformed(data: bytes) -> None:
    with contextlib.suppress(MalformedWireError):
        assert isinstance(map_violations(data, BATCH, per_map=1, total=1), list)


def test_a_group_before_the_maps_is_refused_not_skipped() -> None:
    # An empty group (field 999, wire types 3 and 4) that the parser would accept as an
    # unknown field: before, the walk gave up on it and the uncounted maps were parsed.
    group = b"\xbb\x3e\xbc\x3e"
    with pytest.raises(MalformedWireError):
        map_violations(group + _batch(50), BATCH, per_map=10, total=100)


@pytest.mark.parametrize("cut", [1, 2, 5])
def test_a_truncated_field_is_refused(cut: int) -> None:
    with pytest.raises(MalformedWireError):
        map_violations(_batch(50)[:-cut], BATCH, per_map=100, total=100)


def test_a_truncated_varint_is_refused() -> None:
    with pytest.raises(MalformedWireError):
        map_violations(_batch(5) + b"\x08\xff", BATCH, per_map=100, total=100)


@given(st.lists(st.integers(0, 12), max_size=6), st.integers(1, 12), st.integers(1, 40))
def test_the_walk_agrees_with_the_parsed_message(
    sizes: list[int], per_map: int, total: int
) -> None:
    found = map_violations(_batch(*sizes), BATCH, per_map=per_map, total=total)
    over = any(n > per_map for n in sizes) or sum(sizes) > total
    assert bool(found) == over


def test_violations_are_capped_with_a_count_of_the_rest() -> None:
    many = [FieldViolation(f"fields.f{i}", "unknown field") for i in range(1000)]
    listed = bad_request(many, limit=50).field_violations
    assert len(listed) == 51
    assert (listed[-1].field, listed[-1].description) == (
        "request",
        "950 more violations not listed",
    )


def test_long_violations_stay_within_the_byte_budget() -> None:
    long = [FieldViolation("f" * 5000, "d" * 5000) for _ in range(40)]
    listed = bad_request(long, limit=50)
    assert listed.ByteSize() < 5000
    assert listed.field_violations[-1].description.endswith("more violations not listed")


def _who(name: str) -> Principal:
    return Principal(name, "acme", frozenset({"dpo"}), MappingProxyType({}))


def test_stream_slots_per_principal_public_and_in_all() -> None:
    slots = StreamSlots(
        CallLimits(max_streams=3, max_streams_per_principal=2, max_public_streams=1)
    )
    ada, bob = _who("ada"), _who("bob")
    assert slots.take(ada) is None
    assert slots.take(ada) is None
    assert slots.take(ada) is not None  # her quota
    assert slots.take(None) is None
    assert slots.take(None) is not None  # the public quota
    refused = slots.take(bob)
    assert refused is not None  # the server's
    assert "server" in refused.message
    slots.give_back(ada)
    assert slots.take(bob) is None
    assert slots.open == 3


def test_calls_in_flight_per_principal() -> None:
    slots = StreamSlots(CallLimits(max_calls_per_principal=1))
    assert slots.take_call(_who("ada")) is None
    assert slots.take_call(_who("ada")) is not None
    assert slots.take_call(_who("bob")) is None
    slots.give_back_call(_who("ada"))
    assert slots.take_call(_who("ada")) is None
