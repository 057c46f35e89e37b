"""EventService: decode, call the event feed, encode. Nothing else lives here."""

from __future__ import annotations

from typing import cast

import grpc
from customer_vault_client.gen.customervault.v1 import events_pb2 as pb
from customer_vault_client.gen.customervault.v1 import events_pb2_grpc

from vault.api.convert import timestamp
from vault.clock import from_micros
from vault.context import require_call
from vault.errors import FieldViolation, InvalidArgumentError
from vault.event_kinds import EventKind
from vault.events.service import EventFeed
from vault.storage.events import StoredEvent

_PREFIX = "EVENT_KIND_"


def kind_to_proto(kind: EventKind) -> pb.EventKind:
    return cast("pb.EventKind", pb.EventKind.Value(_PREFIX + kind.name))


def kind_from_proto(value: int) -> EventKind:
    """The domain kind of an API value; INVALID_ARGUMENT for UNSPECIFIED or unknown."""
    try:
        name = pb.EventKind.Name(value)
    except ValueError:
        name = ""
    kind = EventKind.__members__.get(name.removeprefix(_PREFIX))
    if kind is None:
        raise InvalidArgumentError([FieldViolation("kinds", "not an event kind")])
    return kind


def _event(e: StoredEvent) -> pb.Event:
    return pb.Event(
        sequence=e.sequence,
        subject_id=e.subject_id,
        kind=kind_to_proto(e.kind),
        occur_time=timestamp(from_micros(e.occurred_at)),
        facts=e.facts,
    )


class EventServicer(events_pb2_grpc.EventServiceServicer):
    """The gRPC face of the event feed."""

    def __init__(self, feed: EventFeed) -> None:
        self._feed = feed

    def ListEvents(
        self, request: pb.ListEventsRequest, context: grpc.ServicerContext
    ) -> pb.ListEventsResponse:
        kinds = [kind_from_proto(k) for k in request.kinds]
        found = self._feed.list(
            require_call(),
            page_size=request.page_size,
            page_token=request.page_token,
            kinds=kinds,
        )
        return pb.ListEventsResponse(
            events=[_event(e) for e in found.events],
            next_page_token=found.next_page_token,
            oldest_sequence=found.oldest_sequence,
        )
