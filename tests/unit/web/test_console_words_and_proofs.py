"""The console's own logic, without a browser: plain-language entries, rules in words,
the search state in the URL, signature lines (witnesses) and proof verdicts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

import audit
from audit.checkpoint import Checkpoint
from audit.merkle import leaf_hash, root_of
from vault.api.console_client import CheckpointInfo, LoggedEntry, ProofInfo
from vault.web.console import language, proofs
from vault.web.console.search import Search, SearchError, search_url

T = datetime(2026, 12, 6, 5, 30, tzinfo=UTC)


def _entry(**changes: object) -> audit.AuditEntry:
    fields: dict[str, object] = {
        "time": T,
        "actor": "agent-7",
        "actor_roles": ("support_agent",),
        "tenant": "acme",
        "action": "GetSubject",
        "subject_ids": ("sub_abcdefghijklmnopqrstuvwxyz",),
        "purpose": "support",
        "decision": "allow",
        "reason": "p, support_agent, *, subjects:read, view:support, support, 0, *, allow",
        "extra": {"view": "support"},
    }
    fields.update(changes)
    return audit.AuditEntry(**fields)  # type: ignore[arg-type]


def test_entries_read_as_sentences() -> None:
    assert language.sentence(_entry()) == (
        "agent-7 (support agent) read the support view of sub_abcdef… for support: "
        "allowed by 'support agents may read the support view for support'"
    )
    denied = _entry(decision="deny", reason="default-deny", result_code="PERMISSION_DENIED")
    assert language.sentence(denied).endswith("for support: denied: no policy line allows it")
    unknown = _entry(action="Frobnicate", purpose="", reason="", extra={})
    assert (
        language.sentence(unknown)
        == "agent-7 (support agent) called Frobnicate (sub_abcdef…): allowed"
    )
    failed = _entry(result_code="UNAVAILABLE")
    assert language.sentence(failed).endswith("; the call ended UNAVAILABLE")


def test_rules_in_words() -> None:
    assert (
        language.rule_in_words(
            "p, support_lead, *, subjects:reveal, class:restricted, support, 3, *, allow"
        )
        == "support leads may reveal restricted fields for support with clearance 3 or more"
    )
    assert (
        language.rule_in_words("p, *, *, fields:*, class:restricted, marketing, 0, *, deny")
        == "everyone may never see in any form restricted fields for marketing"
    )
    assert language.rule_in_words(
        "p, marketing, acme, subjects:export, view:marketing, sharing, 2, marketing, allow"
    ) == (
        "marketing staff may export the marketing view for sharing with clearance 2 or more "
        "in the marketing department in tenant acme"
    )
    for not_a_rule in ("default-deny", "", "p, x", "g, a, b, *"):
        assert language.rule_in_words(not_a_rule) is None


def test_the_search_lives_in_the_query_string() -> None:
    search = Search.from_query(
        {"decision": "deny", "role": "support_agent", "since": "2026-12-06T05:00", "size": "25"}
    )
    assert search.filters().since == datetime(2026, 12, 6, 5, 0, tzinfo=UTC)
    assert (
        search.url()
        == "/console/audit?since=2026-12-06T05%3A00&role=support_agent&decision=deny&size=25"
    )
    assert "cursor=abc" in search.url(cursor="abc")
    assert Search.from_query(dict(parse_qsl(search.query()))) == search
    assert search_url(actor="agent-7", decision="") == "/console/audit?actor=agent-7"
    for bad in (
        {"decision": "maybe"},
        {"since": "yesterday"},
        {"size": "7"},
        {"order": "random"},
        {"actor": "<script>"},
        {"cursor": "not a cursor!"},
    ):
        with pytest.raises(SearchError):
            Search.from_query(bad)
    with pytest.raises(ValueError):
        search_url(password="x")


def _keys(tmp_path: Path, name: str) -> audit.CheckpointSigner:
    private, _ = audit.generate_signing_key(tmp_path / f"{name}.pem")
    return audit.CheckpointSigner.from_pem(private.read_bytes(), name=name)


def test_witness_cosignatures_are_listed_and_the_log_signature_checked(tmp_path: Path) -> None:
    log = _keys(tmp_path, "customer-vault/audit")
    witness = _keys(tmp_path, "witness.example/w1")
    leaves = [leaf_hash(_entry(request_id=f"r{i}").canonical_bytes()) for i in range(3)]
    head = Checkpoint("customer-vault/audit", 3, root_of(leaves))
    note = log.sign(head)
    body, _, _signature = note.rpartition("\n\n")
    cosigned = witness.sign_note(body + "\n")
    note_with_witness = note + cosigned.rpartition("\n\n")[2]
    info = CheckpointInfo(head.origin, head.size, head.root_hash, note_with_witness)
    verifier = log.verifier()
    lines = proofs.signature_lines(verifier, info)
    assert [(line.key_name, line.role) for line in lines] == [
        ("customer-vault/audit", "the log's signing key"),
        ("witness.example/w1", "witness or other key"),
    ]
    assert proofs.checkpoint_verdict(verifier, info).ok is True
    other = _keys(tmp_path, "customer-vault/audit-2").verifier()
    assert proofs.checkpoint_verdict(other, info).ok is False
    assert proofs.checkpoint_verdict(None, info).ok is None
    lying = CheckpointInfo(head.origin, 4, head.root_hash, note)
    assert proofs.checkpoint_verdict(verifier, lying).ok is False


def test_an_entry_that_is_not_the_logged_leaf_fails_its_proof(tmp_path: Path) -> None:
    entries = [_entry(request_id=f"r{i}") for i in range(5)]
    leaves = [leaf_hash(e.canonical_bytes()) for e in entries]
    info = CheckpointInfo("customer-vault/audit", 5, root_of(leaves), "")
    from audit.merkle import inclusion_proof

    proof = ProofInfo(2, 5, leaves[2], tuple(inclusion_proof(leaves, 2, 5)))
    assert proofs.inclusion_verdict(info, LoggedEntry(2, entries[2]), proof).ok is True
    shown = LoggedEntry(2, _entry(request_id="r2", actor="agent-8"))
    verdict = proofs.inclusion_verdict(info, shown, proof)
    assert verdict.ok is False and "does NOT match" in verdict.summary
    forged = ProofInfo(2, 5, leaves[2], (leaves[0], *proof.hashes[1:]))
    assert proofs.inclusion_verdict(info, LoggedEntry(2, entries[2]), forged).ok is False
