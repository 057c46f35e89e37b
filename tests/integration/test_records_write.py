"""Creating, updating, erasing and recording activity through the real server."""

from __future__ import annotations

import hashlib

import grpc
import pytest
import sqlalchemy as sa
from customer_vault_client.gen.customervault.v1 import vault_pb2 as pb
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.data import ADA, GRACE
from tests.integration.harness import RunningVault, raw_stub, shreddable_copies
from tests.raw_files import database_files_holding
from vault.api.client import VaultClientError


def _count(vault: RunningVault, table: str) -> int:
    with vault.app.db.engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_create_returns_a_random_id_and_version_one(vault: RunningVault) -> None:
    client = vault.client()
    first = client.create(ADA)
    second = client.create(ADA)
    assert first.subject_id.startswith("sub_") and second.subject_id.startswith("sub_")
    assert first.subject_id != second.subject_id  # never derived from PII
    assert first.version == 1 and first.tenant == "acme"
    assert _count(vault, "subjects") == 2


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({**ADA, "email": "not-an-email"}, "fields.email"),
        ({**ADA, "phone": "12"}, "fields.phone"),
        ({**ADA, "date_of_birth": "1815-02-30"}, "fields.date_of_birth"),
        ({**ADA, "favourite_colour": "blue"}, "fields.favourite_colour"),
        ({**ADA, "given_name": "A" * 5000}, "fields.given_name"),
        ({k: v for k, v in ADA.items() if k != "email"}, "fields.email"),
    ],
)
def test_bad_input_is_invalid_argument_with_violations_and_writes_nothing(
    vault: RunningVault, fields: dict[str, str], bad: str
) -> None:
    with pytest.raises(VaultClientError) as caught:
        vault.client().create(fields)
    assert caught.value.code == "INVALID_ARGUMENT"
    assert bad in [field for field, _ in caught.value.violations]
    assert _count(vault, "subjects") == 0
    assert _count(vault, "blind_indexes") == 0


def test_every_violation_is_reported_at_once(sqlite_vault: RunningVault) -> None:
    with pytest.raises(VaultClientError) as caught:
        sqlite_vault.client().create({**ADA, "email": "x", "phone": "y", "country": "ZZ"})
    fields = {field for field, _ in caught.value.violations}
    assert {"fields.email", "fields.phone", "fields.country"} <= fields


def test_batch_limits(sqlite_vault: RunningVault) -> None:
    client = sqlite_vault.client()
    for items in ([], [ADA] * 10_001):
        with pytest.raises(VaultClientError) as caught:
            client.batch_create(items)
        assert caught.value.code == "INVALID_ARGUMENT"
    assert _count(sqlite_vault, "subjects") == 0


def test_batch_all_or_nothing_writes_nothing_when_one_item_is_bad(vault: RunningVault) -> None:
    items = [dict(ADA) for _ in range(50)]
    items[37]["email"] = "broken"
    with pytest.raises(VaultClientError) as caught:
        vault.client().batch_create(items, all_or_nothing=True)
    assert caught.value.code == "INVALID_ARGUMENT"
    assert [f for f, _ in caught.value.violations] == ["items[37].fields.email"]
    assert _count(vault, "subjects") == 0


def test_batch_without_all_or_nothing_stores_the_good_items(vault: RunningVault) -> None:
    items = [dict(ADA) for _ in range(10)]
    items[3]["phone"] = "nope"
    items[8] = {**ADA, "unknown": "x"}
    answer = vault.client().batch_create(items)
    assert answer.created == 8 and answer.failed == 2
    failed = {r.index for r in answer.results if r.HasField("error")}
    assert failed == {3, 8}
    assert all(r.subject_id for r in answer.results if r.index not in failed)
    assert _count(vault, "subjects") == 8


def test_a_full_batch_of_ten_thousand(sqlite_vault: RunningVault) -> None:
    answer = sqlite_vault.client().batch_create([ADA] * 10_000, all_or_nothing=True)
    assert answer.created == 10_000
    assert len({r.subject_id for r in answer.results}) == 10_000
    assert _count(sqlite_vault, "subjects") == 10_000


def test_update_needs_the_current_version(vault: RunningVault) -> None:
    client = vault.client()
    created = client.create(ADA)
    updated = client.update(created.subject_id, 1, {"city": "London"}, reason="moved")
    assert updated.version == 2
    with pytest.raises(VaultClientError) as caught:
        client.update(created.subject_id, 1, {"city": "Paris"}, reason="stale")
    assert caught.value.code == "ABORTED"
    with pytest.raises(VaultClientError) as caught:
        client.update(created.subject_id, 2, {"email": "bad"}, reason="typo")
    assert caught.value.code == "INVALID_ARGUMENT"


def test_erase_shreds_the_data_key_and_indexes_and_is_idempotent(vault: RunningVault) -> None:
    client = vault.client()
    created = client.create(ADA)
    erased = client.erase(created.subject_id, reason="erasure request")
    assert erased.state == 5  # SUBJECT_STATE_ERASED
    again = client.erase(created.subject_id, reason="erasure request")
    assert again.version == erased.version
    with vault.app.db.engine.connect() as conn:
        row = conn.execute(sa.text("SELECT wrapped_dek, kek_version, fields FROM subjects")).one()
    assert row == (None, None, None)
    assert _count(vault, "blind_indexes") == 0
    with pytest.raises(VaultClientError) as caught:
        client.update(created.subject_id, again.version, {"city": "x"}, reason="after")
    assert caught.value.code == "FAILED_PRECONDITION"


def test_erase_leaves_no_copy_in_the_database_files(sqlite_vault: RunningVault) -> None:
    """Read as raw bytes, the SQLite files hold no earlier copy of what erasure destroyed:
    deleted content is zeroed (secure_delete) and the WAL, whose frames still held the
    pages as they were, is checkpointed and truncated before the call returns."""
    client = sqlite_vault.client()
    erased = client.create(ADA).subject_id
    kept = client.create(GRACE).subject_id
    client.tokenize(erased, "email", pb.TOKEN_KIND_RANDOM, "support")
    engine, data_dir = sqlite_vault.app.db.engine, sqlite_vault.settings.data_dir
    doomed, others = shreddable_copies(engine, [erased]), shreddable_copies(engine, [kept])
    assert len(doomed) >= 10 and sum(database_files_holding(data_dir, doomed).values()) >= 10

    client.erase(erased, reason="erasure request")

    assert not sqlite_vault.app.db.scrub_is_pending
    assert database_files_holding(data_dir, doomed) == {}
    assert sum(database_files_holding(data_dir, others).values()) >= len(others)  # it looks


def test_other_tenants_cannot_touch_a_subject(vault: RunningVault) -> None:
    created = vault.client().create(ADA)
    intruder = vault.client(tenant="globex")
    with pytest.raises(VaultClientError) as caught:
        intruder.update(created.subject_id, 1, {"city": "x"}, reason="probe")
    assert caught.value.code == "NOT_FOUND"
    with pytest.raises(VaultClientError) as caught:
        intruder.erase(created.subject_id, reason="probe")
    assert caught.value.code == "NOT_FOUND"


def test_record_activity_moves_last_activity_forward(vault: RunningVault) -> None:
    client = vault.client()
    created = client.create(ADA)
    touched = client.record_activity(created.subject_id)
    assert touched.last_activity_at.ToDatetime() >= created.last_activity_at.ToDatetime()
    assert touched.version == created.version


@pytest.mark.parametrize("kind", [99, -1])
def test_record_activity_refuses_an_unknown_kind(sqlite_vault: RunningVault, kind: int) -> None:
    created = sqlite_vault.client().create(ADA)
    stub, channel = raw_stub(sqlite_vault)
    metadata = (("authorization", f"Bearer {sqlite_vault.token()}"),)
    request = pb.RecordActivityRequest(subject_id=created.subject_id, kind=kind)  # type: ignore[arg-type]
    with channel, pytest.raises(grpc.RpcError) as caught:
        stub.RecordActivity(request, metadata=metadata)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(caught.value)  # type: ignore[arg-type]
    assert status is not None
    (detail,) = [d for d in status.details if d.Is(error_details_pb2.BadRequest.DESCRIPTOR)]
    bad = error_details_pb2.BadRequest()
    detail.Unpack(bad)
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("kind", "unknown activity kind")
    ]


def _raw_database_text(vault: RunningVault) -> bytes:
    """Every value of every column of every table, as bytes."""
    chunks = []
    engine = vault.app.db.engine
    with engine.connect() as conn:
        for table in sa.inspect(engine).get_table_names():
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        chunks.append(bytes(value))
                    elif value is not None:
                        chunks.append(str(value).encode())
    return b"\x00".join(chunks)


def test_no_pii_in_clear_text_or_as_a_plain_hash_anywhere_in_the_database(
    vault: RunningVault,
) -> None:
    client = vault.client()
    created = client.create(ADA)
    client.batch_create([ADA] * 3)
    client.update(created.subject_id, 1, {"city": "Marylebone"}, reason="moved")
    raw = _raw_database_text(vault)
    assert raw  # the scan saw the tables
    normalized = ["ada.lovelace@example.com", "+442079460018", "QQ123456C", "W1A 1AA"]
    secrets = [*ADA.values(), *normalized, "Marylebone"]
    # Values of six characters or more: a shorter one could turn up by chance in base64.
    for value in (v for v in secrets if len(v.strip()) >= 6):
        for form in (value, value.strip(), value.lower()):
            assert form.encode() not in raw, "a PII value is stored in clear text"
            digest = hashlib.sha256(form.encode())
            assert digest.digest() not in raw and digest.hexdigest().encode() not in raw
