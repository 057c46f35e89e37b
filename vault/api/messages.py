"""Protobuf messages for the command line, which never imports generated code itself.

Requests are built from plain values in the messages' field names (nested messages as
dicts, enum values by name, times as RFC 3339 text); responses are read through
attributes and shown with the helpers here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC
from types import ModuleType
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from vault.api.gen.customervault.v1 import (
    admin_pb2,
    audit_pb2,
    consent_pb2,
    events_pb2,
    retention_pb2,
    rights_pb2,
)

SERVICES: Mapping[str, tuple[ModuleType, str]] = {
    "admin": (admin_pb2, "PolicyAdminService"),
    "audit": (audit_pb2, "AuditService"),
    "consent": (consent_pb2, "ConsentService"),
    "events": (events_pb2, "EventService"),
    "rights": (rights_pb2, "RightsService"),
    "retention": (retention_pb2, "RetentionService"),
}
"""The client's name for each service (`VaultClient` attribute), its module and name."""


class RequestError(ValueError):
    """The plain values do not make the method's request (an unknown field or enum name)."""


def build_request(service: str, method: str, fields: Mapping[str, Any]) -> Message:
    """The request message of `service`'s `method`, filled from `fields`."""
    module, name = SERVICES[service]
    descriptor = module.DESCRIPTOR.services_by_name[name].methods_by_name[method].input_type
    message: Message = getattr(module, descriptor.name)()
    try:
        json_format.ParseDict(dict(fields), message)
    except json_format.ParseError as exc:
        raise RequestError(str(exc)) from None
    return message


def to_json(message: Message) -> str:
    """The message in protobuf's JSON mapping, indented (what `--json` prints)."""
    return json_format.MessageToJson(message, indent=2)


def to_json_line(message: Message) -> str:
    """The message in protobuf's JSON mapping on one line (a JSON-lines record)."""
    return json.dumps(json_format.MessageToDict(message), separators=(",", ":"))


def enum_name(message: Message, field: str) -> str:
    """The name of the enum value `message.field` holds, e.g. `SUBJECT_STATE_ACTIVE`."""
    enum = message.DESCRIPTOR.fields_by_name[field].enum_type
    number = getattr(message, field)
    value = None if enum is None else enum.values_by_number.get(number)
    return value.name if value is not None else str(number)


def time_text(message: Message, field: str) -> str:
    """A timestamp field as ISO 8601 text in UTC, or "" when it is not set."""
    if not message.HasField(field):
        return ""
    return str(getattr(message, field).ToDatetime(tzinfo=UTC).isoformat())
