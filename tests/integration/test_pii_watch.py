"""The suite-wide PII watch (tests/pii_watch.py) sees what it claims to: values sent to
the vault are seeded, and a seeded value planted in a log line, a span, a metric, an
error status or the audit log is reported."""

from __future__ import annotations

import logging

from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from tests import pii_watch
from tests.data import ADA, DPO
from tests.integration.harness import RunningVault


def test_values_sent_to_the_vault_are_seeded_as_sent_and_normalized(
    vault: RunningVault, watch_for_pii: pii_watch.PiiWatch
) -> None:
    vault.client().create(ADA)
    assert {"lovelace", "ada.lovelace@example.com", "+442079460018", "qq 12 34 56 c"} <= (
        watch_for_pii.seeded
    )
    assert "gb" not in watch_for_pii.seeded  # short and public: it would match anything
    assert watch_for_pii.leaks() == []  # a clean call leaks nothing


def test_a_seeded_value_in_a_log_line_span_metric_or_status_is_reported() -> None:
    # A watch of its own, seeded by hand: the test's own watch seeded nothing (no call
    # went to a vault), so what is planted here does not fail this test at its end.
    watch = pii_watch.PiiWatch()
    watch.seed(ADA["family_name"], "family_name")
    watch.seed(ADA["email"], "email")
    watch.seed("078-05-1120", "national_id")
    capture = pii_watch.start(watch)
    try:
        logging.getLogger("vault.planted").debug("customer %s", ADA["family_name"])
        assert capture.tracer_provider is not None and capture.meter_provider is not None
        tracer = capture.tracer_provider.get_tracer("planted")
        with tracer.start_as_current_span("planted", attributes={"to": ADA["email"].strip()}):
            pass
        counter = capture.meter_provider.get_meter("planted").create_counter("planted")
        counter.add(1, {"who": ADA["family_name"].upper()})
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(description="078-05-1120")
            ]
        )
        detail = any_pb2.Any()
        detail.Pack(bad)
        watch.see(
            "error status", pii_watch.status_text(status_pb2.Status(code=3, details=[detail]))
        )
    finally:
        capture.close()
    assert watch.leaks() == [
        ("error status", "078-05-1120"),
        ("log vault.planted", "lovelace"),
        ("metric", "lovelace"),
        ("span", "ada.lovelace@example.com"),
        ("span", "lovelace"),  # part of the address: any seeded value is looked for
    ]


def test_a_seeded_value_in_the_audit_log_is_reported(
    vault: RunningVault, watch_for_pii: pii_watch.PiiWatch
) -> None:
    subject = vault.client().create(ADA).subject_id
    # A justification is free text the vault records as written (docs/security.md): a
    # caller who types a customer's name into it is what the watch is there to catch.
    vault.client(**DPO).reveal(
        subject, "email", "data_subject_request", f"DSR-4 asked by {ADA['family_name']}"
    )
    before = len(watch_for_pii.captured)
    pii_watch.export_audit(vault.app.db.engine)
    assert {v for c, v in watch_for_pii.leaks() if c.startswith("audit export")} == {"lovelace"}
    # Planted on purpose, and still in the log when the vault closes: not a failure.
    del watch_for_pii.captured[before:]
    watch_for_pii.seeded.discard("lovelace")
