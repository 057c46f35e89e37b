"""Requests from plain values, responses as JSON or text (what a command line needs).

Requests are built from plain values in the messages' field names (nested messages as
dicts, enum values by name, times as RFC 3339 text), in protobuf's JSON mapping.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from customer_vault_client.services import SERVICES, descriptor


class RequestError(ValueError):
    """The plain values do not make the method's request (an unknown field or enum name)."""


def build_request(service: str, method: str, fields: Mapping[str, Any]) -> Message:
    """The request message of `service`'s `method` (client names: "consent", ...)."""
    module = SERVICES[service][0]
    input_type = descriptor(service).methods_by_name[method].input_type
    message: Message = getattr(module, input_type.name)()
    try:
        json_format.ParseDict(dict(fields), message)
    except json_format.ParseError as exc:
        raise RequestError(str(exc)) from None
    return message


def to_dict(message: Message) -> dict[str, Any]:
    """The message in protobuf's JSON mapping, as a dict."""
    return json_format.MessageToDict(message)


def to_json(message: Message) -> str:
    """The message in protobuf's JSON mapping, indented."""
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
