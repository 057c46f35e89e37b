"""Nothing is parsed or buffered at size before the caller is authenticated (issue 20,
item 2).

The vault runs as its own process (`customer-vault serve`), so its memory can be read
from /proc: each attack resets the process's peak RSS (``clear_refs``), runs, and the
peak must stay within `GROWTH_BOUND` of the RSS before it. The replies must be clear
statuses (UNAUTHENTICATED, RESOURCE_EXHAUSTED, INVALID_ARGUMENT with a short BadRequest),
never a metadata overflow.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from customer_vault_client.gen.customervault.v1 import vault_pb2 as pb
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.data import ADA
from tests.integration.serving import ServeProcess, clean_env, serving, token_for

MIB = 1024 * 1024
GROWTH_BOUND = 200 * MIB
"""The most any of these attacks may add to the server's resident memory."""
CONCURRENT = 24
CREATE = "/customervault.v1.VaultService/CreateSubject"
BATCH = "/customervault.v1.VaultService/BatchCreateSubjects"


@dataclass
class Memory:
    before: int
    peak: int

    @property
    def growth(self) -> int:
        return self.peak - self.before

    def __str__(self) -> str:
        return (
            f"RSS {self.before / MIB:.0f} MiB before, peak {self.peak / MIB:.0f} MiB"
            f" (+{self.growth / MIB:.0f} MiB)"
        )


def _status_bytes(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    found = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    assert found, field
    return int(found.group(1)) * 1024


def measured(pid: int, attack: Callable[[], None]) -> Memory:
    """Run `attack`; the server's RSS before it and its peak RSS during it."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before = _status_bytes(pid, "VmRSS")
    attack()
    return Memory(before, _status_bytes(pid, "VmHWM"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, str]]:
    tmp = tmp_path_factory.mktemp("limits")
    data = tmp / "data"
    env = clean_env(VAULT_RETENTION_SCHEDULE="", VAULT_DATA_DIR=str(data))
    with serving(["--address", "127.0.0.1:0"], env, tmp / "vault.log") as vault:
        token = token_for(data)
        with grpc.insecure_channel(vault.address) as channel:  # warm up every path once
            _call(channel, CREATE, pb.CreateSubjectRequest(fields=ADA).SerializeToString(), token)
        yield vault, token


@pytest.fixture(scope="module")
def callers(server: tuple[ServeProcess, str]) -> list[str]:
    """Tokens of four callers: concurrent batches come from several callers, each of
    whom may have only so many in flight (`VAULT_MAX_BATCHES_PER_CALLER`)."""
    data = server[0].log_path.parent / "data"  # where `server` put its data dir
    return [token_for(data, principal=f"loader-{n}") for n in range(4)]


def _call(
    channel: grpc.Channel, method: str, payload: bytes, token: str | None
) -> tuple[grpc.StatusCode, grpc.RpcError | None]:
    """Send already serialized request bytes; the status code it ended with."""
    send = channel.unary_unary(method)  # no serializers: bytes go out as they are
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    try:
        send(payload, metadata=metadata, timeout=120)
    except grpc.RpcError as exc:
        return exc.code(), exc
    return grpc.StatusCode.OK, None


def _concurrently(
    address: str, method: str, payload: bytes, token: str | list[str] | None,
    count: int = CONCURRENT,
) -> list[tuple[grpc.StatusCode, grpc.RpcError | None]]:  # fmt: skip
    """`count` calls at once, from one caller or in turn from each of a list."""
    tokens = token if isinstance(token, list) else [token]
    with grpc.insecure_channel(address) as channel, ThreadPoolExecutor(count) as pool:
        return list(
            pool.map(
                lambda n: _call(channel, method, payload, tokens[n % len(tokens)]), range(count)
            )
        )


def test_unauthenticated_large_calls_are_refused_unread(
    server: tuple[ServeProcess, str],
) -> None:
    vault, _token = server
    huge = pb.CreateSubjectRequest(fields={"notes": "x" * 30_000_000}).SerializeToString()
    under_the_server_limit = pb.BatchCreateSubjectsRequest(
        items=[pb.SubjectInput(fields={"notes": "y" * 7_900_000})]
    ).SerializeToString()
    replies = []

    def attack() -> None:
        replies.extend(_concurrently(vault.address, CREATE, huge, None))
        replies.extend(_concurrently(vault.address, BATCH, under_the_server_limit, None))

    memory = measured(vault.process.pid, attack)
    print(f"\n{2 * CONCURRENT} unauthenticated 30 MB / 7.9 MB calls: {memory}")
    assert {code for code, _ in replies} == {grpc.StatusCode.UNAUTHENTICATED}
    assert memory.growth < GROWTH_BOUND, memory


def test_authenticated_calls_over_their_method_limit_are_refused(
    server: tuple[ServeProcess, str],
) -> None:
    vault, token = server
    # 2 MB is over CreateSubject's 1 MiB but under what gRPC accepts (the batch's 8 MiB).
    over = pb.CreateSubjectRequest(fields={"notes": "x" * 2_000_000}).SerializeToString()
    replies = []
    memory = measured(
        vault.process.pid,
        lambda: replies.extend(_concurrently(vault.address, CREATE, over, token)),
    )
    print(f"\n{CONCURRENT} authenticated 2 MB CreateSubject calls: {memory}")
    assert {code for code, _ in replies} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    error = replies[0][1]
    assert error is not None
    assert "at most 1048576" in (error.details() or "")
    assert memory.growth < GROWTH_BOUND, memory


def _names(count: int) -> Iterator[str]:
    """`count` distinct short field names no dictionary has."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    for i in range(count):
        name, left = "", i
        while True:
            left, rest = divmod(left, 36)
            name = digits[rest] + name
            if not left:
                break
        yield name


def _subject_with_empty_fields(names: list[str]) -> bytes:
    """items {fields: {name: "" for each name}} of a BatchCreateSubjectsRequest, written
    by hand: map entries with only a key (the empty value is implied) are the smallest
    the wire format allows, so a million of them fit under the batch's 8 MiB."""
    return _field(1, b"".join(_field(1, _field(1, name.encode())) for name in names))


def _field(number: int, value: bytes) -> bytes:
    """A length-delimited field: tag, length, bytes."""
    return bytes([number << 3 | 2]) + _varint(len(value)) + value


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _bad_request(error: grpc.RpcError) -> error_details_pb2.BadRequest:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            found = error_details_pb2.BadRequest()
            detail.Unpack(found)
            return found
    raise AssertionError("no BadRequest")


@pytest.mark.parametrize(
    ("subjects", "refused"),
    [
        (1, ("items[0].fields", "more than 256 entries")),
        (4_000, ("request", "more than 200000 map entries in all")),
    ],
    ids=["in one subject", "spread over 4,000 subjects"],
)
def test_a_million_unknown_field_names_are_refused_unparsed(
    server: tuple[ServeProcess, str], callers: list[str], subjects: int, refused: tuple[str, str]
) -> None:
    vault, _ = server
    names = list(_names(1_000_000 // subjects))
    payload = b"".join(_subject_with_empty_fields(names) for _ in range(subjects))
    assert len(payload) < 8 * MIB
    parsed = pb.BatchCreateSubjectsRequest.FromString(payload)
    assert sum(len(item.fields) for item in parsed.items) == 1_000_000
    del parsed
    replies = []
    memory = measured(
        vault.process.pid,
        lambda: replies.extend(_concurrently(vault.address, BATCH, payload, callers, count=4)),
    )
    print(f"\n4 concurrent batches with 1,000,000 unknown fields ({subjects} subjects): {memory}")
    assert {code for code, _ in replies} == {grpc.StatusCode.INVALID_ARGUMENT}
    error = replies[0][1]
    assert error is not None
    violations = _bad_request(error).field_violations
    assert [(v.field, v.description) for v in violations] == [refused]
    assert memory.growth < GROWTH_BOUND, memory


def test_violations_are_capped_with_a_count_of_the_rest(
    server: tuple[ServeProcess, str],
) -> None:
    vault, token = server
    names = [f"unknown_{n}" for n in _names(250)]  # under the map cap: the domain sees them
    payload = pb.CreateSubjectRequest(fields=dict.fromkeys(names, "v")).SerializeToString()
    with grpc.insecure_channel(vault.address) as channel:
        code, error = _call(channel, CREATE, payload, token)
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert error is not None
    violations = _bad_request(error).field_violations
    assert len(violations) == 51
    assert violations[-1].field == "request"
    assert violations[-1].description.endswith("more violations not listed")
    trailer = sum(len(k) + len(v) for k, v in error.trailing_metadata())  # type: ignore[attr-defined]
    assert trailer < 8 * 1024


def test_a_group_in_front_of_the_maps_is_refused_unparsed(
    server: tuple[ServeProcess, str], callers: list[str]
) -> None:
    """An empty group (field 999) before a million map entries: the parser accepts a
    group as an unknown field, and the map count used to give up on it, so the whole
    request was parsed (32 at once took the server from 435 MB to 1.7 GB). Now bytes the
    count cannot read are refused as malformed before anything is parsed."""
    vault, _ = server
    names = list(_names(1_000_000 // 4_000))
    payload = b"\xbb\x3e\xbc\x3e" + b"".join(
        _subject_with_empty_fields(names) for _ in range(4_000)
    )
    replies: list[tuple[grpc.StatusCode, grpc.RpcError | None]] = []
    memory = measured(
        vault.process.pid,
        lambda: replies.extend(_concurrently(vault.address, BATCH, payload, callers, count=4)),
    )
    assert {code for code, _ in replies} == {grpc.StatusCode.INVALID_ARGUMENT}
    error = replies[0][1]
    assert error is not None
    assert [v.field for v in _bad_request(error).field_violations] == ["request"]
    assert memory.growth < GROWTH_BOUND, memory
