"""`convert.timestamp` computes what protobuf's `Timestamp.FromDatetime` computes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from google.protobuf import timestamp_pb2
from hypothesis import given
from hypothesis import strategies as st

from vault.api import convert


def _reference(moment: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(moment)
    return ts


@given(
    moment=st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
    offset_minutes=st.one_of(st.none(), st.integers(-23 * 60, 23 * 60)),
)
def test_timestamp_matches_from_datetime(moment: datetime, offset_minutes: int | None) -> None:
    if offset_minutes is not None:
        zone = UTC if offset_minutes == 0 else timezone(timedelta(minutes=offset_minutes))
        try:
            moment = moment.replace(tzinfo=zone)
            moment.astimezone(UTC)
        except OverflowError:
            return  # the offset pushes it out of datetime's range: no such moment
    assert convert.timestamp(moment) == _reference(moment)
