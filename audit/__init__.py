"""Tamper-evident audit log: entries in an RFC 6962 Merkle tree with signed checkpoints.

This package owns its tables (`audit_*`, Alembic version table `audit_alembic_version`)
and imports nothing from `vault`. It may share the vault's database and engine or use
its own. The API the vault calls:

Schema
    migrate(engine) -> None                   upgrade to head (idempotent; safe to race)
    is_current(engine) -> bool

Entries (identifiers, names and codes only: never a PII value)
    AuditEntry(*, time, actor, tenant, action, decision, actor_roles=(), subject_ids=(),
               field_names=(), purpose="", justification="", reason="",
               policy_version="", consent_version="", result_code="", request_id="",
               trace_id="", caller_address="", extra={})
        raises InvalidEntryError (naming the field, never the value) for a value that
        breaks the rules in `audit.entry_rules`; is_opaque_id(value) pre-checks a subject id.

The one object a host holds
    AuditLog(engine, *, signer=None, origin=None, integrate_interval=1.0, max_batch=1000,
             checkpoint_interval=1024, now=utc_now)
        .start()  .append(entry)  .append_in(conn, entries)  .close()
        .start_integrating(signer, origin, *, interval=None, last_signed=None, mac=None,
                           on_refusal=None, on_checkpoint=None)  (opened without a signer)

Appending
    append_in(conn, entries) -> list[int]     in the caller's transaction (changes)
    encode(entry) -> EncodedEntry             row and links computed ahead (any process)
    append_encoded_in(conn, encoded) -> list[int]         append_in for encoded entries
    GroupCommitWriter(engine, *, max_batch=1000)          group commit (reads)
        .append(entry, *, timeout=10.0) -> int            blocks until committed;
                                              AuditUnavailableError: fail closed
        .submit(entry) -> PendingAppend                   without waiting; nothing may leave
                                              before its .wait() / .when_done(callback)
        .close(timeout=None)

Signing and integrating (one integrator at a time, under the log's lock)
    generate_signing_key(private_path, public_path=None) -> (private, public)
        public_path defaults to <private>.pub.pem; load_private_key / load_public_key
    CheckpointSigner(private_key_pem: bytes, key_name: str)
    CheckpointSigner.from_pem(private_key_pem: bytes, *, name: str)
    CheckpointVerifier.from_pem(public_key_pem: bytes, key_name=None, *, origin=None)
    Integrator(engine, signer, origin, *, checkpoint_interval=1024, now=utc_now,
               last_signed=None, mac=None)
        .integrate(max_batch=10_000) -> Checkpoint | None
        TreeConflictError (latched: .refusal) when the stored tree is not consistent
        with the last checkpoint it signed (LastSignedFile(path, verifier), a file
        outside the database) or a pending entry's MAC or leaf hash is wrong
    IntegratorThread(integrator, *, interval=1.0, max_batch=10_000, on_refusal=None,
                     on_checkpoint=None) .start() .stop()

Entry MACs (HMAC-SHA256, key in a file, never in the database)
    generate_mac_key(path) / EntryMac.from_file(path)
    use_entry_mac(engine, mac)                every append through `engine` carries a MAC

Witnesses (C2SP tlog-witness; the server is `audit.witness`)
    CosignatureSigner / CosignatureVerifier.from_verifier_key(vkey)
    Publisher(engine, [WitnessClient(url, verifier)], log_verifier, *, on_alarm=None)
        .publish() .lag() .alarms();  PublisherThread(publisher).start() .notify() .stop()

Reading
    query(engine, *, subject_id=None, actor=None, action=None, decision=None,
          purpose=None, tenant=None, result_code=None, since=None, until=None,
          role=None, newest_first=False, page_size=100, page_token=None)
          -> Page(entries, next_page_token)
    entry_at(engine, leaf_index, *, tenant=None) -> LoggedEntry | None
    subject_history(engine, subject_id, *, tenant=None, since=None, until=None,
                    page_size=100, page_token=None) -> Page
    iter_query(engine, **filters) -> Iterator[LoggedEntry]
    iter_documents(engine, *, tenant, since) -> (leaf index, JSON document)   fast, unchecked
    authentic(engine, entries, mac) -> (entries whose MAC verifies, how many did not)
    write_jsonl(entries, out) / write_csv(entries, out) -> int
    write_html(entries, out, *, title, generated_at=None, summary=None) -> int

Proofs and verification
    latest_checkpoint(engine) -> str | None   the signed note (C2SP tlog-checkpoint)
    newest_cosignatures(engine) -> [StoredCosignature]   each witness's newest one
    checkpoint_at(engine, size) / export_checkpoint(engine, directory) -> Path
    inclusion_proof(engine, leaf_index, tree_size) -> list[bytes]
    consistency_proof(engine, size1, size2) -> list[bytes]
        ProofError for sizes the log cannot serve; VerifyError if its leaves are broken
    verify_inclusion(...) / verify_consistency(...)      client-side checks (raise)
    verify_log(engine, verifier, trusted_checkpoint=None, progress=None, *,
               check_index=True, mac=None, witnesses=(), workers=1) -> VerifyReport
        .ok .first_bad_position .problem .witnessed .latest_cosigned_by .mac_legacy
        .raise_for_failure()

Typical use:

    audit.migrate(engine)
    signer = audit.CheckpointSigner.from_pem(key_pem, name="customer-vault/audit")
    log = audit.AuditLog(engine, signer=signer, origin="customer-vault/audit")
    log.start()                             # the group-commit writer and the integrator
    log.append(entry)                       # a read: durable before any data leaves
    with engine.begin() as conn:
        ...change...
        log.append_in(conn, [entry])        # a change: same transaction
    log.close()
    verifier = audit.CheckpointVerifier.from_pem(public_pem)
    audit.verify_log(engine, verifier).raise_for_failure()

`audit.cli.app` is the `customer-vault audit ...` command group.
"""

from audit.append import EncodedEntry, append_encoded_in, append_in, encode
from audit.checkpoint import Checkpoint, CheckpointSigner, CheckpointVerifier
from audit.cosignature import Cosignature, CosignatureSigner, CosignatureVerifier
from audit.db import create_sqlite_engine, is_current, migrate
from audit.entry import ALLOW, DENY, AuditEntry
from audit.entry_rules import MAX_JUSTIFICATION, MAX_SHORT, NAME_PATTERN, is_opaque_id
from audit.errors import (
    AuditError,
    AuditUnavailableError,
    CheckpointError,
    InvalidEntryError,
    KeyFormatError,
    PageTokenError,
    ProofError,
    TreeConflictError,
    VerifyError,
)
from audit.export import write_csv, write_html, write_jsonl
from audit.integrator import Integrator, IntegratorThread, utc_now
from audit.last_signed import LastSigned, LastSignedFile
from audit.log import AuditLog
from audit.mac import EntryMac, entry_mac_for, generate_mac_key, use_entry_mac
from audit.merkle_verify import (
    verify_consistency,
    verify_inclusion,
    verify_subtree_consistency,
    verify_subtree_inclusion,
)
from audit.proofs import (
    Backlog,
    StoredCosignature,
    backlog,
    checkpoint_at,
    consistency_proof,
    export_checkpoint,
    inclusion_proof,
    latest_checkpoint,
    leaf_hash_at,
    newest_cosignatures,
)
from audit.publish import Publisher, PublisherThread
from audit.query import (
    LoggedEntry,
    Page,
    authentic,
    entry_at,
    iter_documents,
    iter_query,
    query,
    subject_history,
)
from audit.signing_keys import generate_signing_key, load_private_key, load_public_key
from audit.verify import VerifyReport, verify_log
from audit.writer import GroupCommitWriter, PendingAppend

__all__ = [
    "ALLOW",
    "DENY",
    "MAX_JUSTIFICATION",
    "MAX_SHORT",
    "NAME_PATTERN",
    "AuditEntry",
    "AuditError",
    "AuditLog",
    "AuditUnavailableError",
    "Backlog",
    "Checkpoint",
    "CheckpointError",
    "CheckpointSigner",
    "CheckpointVerifier",
    "Cosignature",
    "CosignatureSigner",
    "CosignatureVerifier",
    "EncodedEntry",
    "EntryMac",
    "GroupCommitWriter",
    "Integrator",
    "IntegratorThread",
    "InvalidEntryError",
    "KeyFormatError",
    "LastSigned",
    "LastSignedFile",
    "LoggedEntry",
    "Page",
    "PageTokenError",
    "PendingAppend",
    "ProofError",
    "Publisher",
    "PublisherThread",
    "StoredCosignature",
    "TreeConflictError",
    "VerifyError",
    "VerifyReport",
    "append_encoded_in",
    "append_in",
    "authentic",
    "backlog",
    "checkpoint_at",
    "consistency_proof",
    "create_sqlite_engine",
    "encode",
    "entry_at",
    "entry_mac_for",
    "export_checkpoint",
    "generate_mac_key",
    "generate_signing_key",
    "inclusion_proof",
    "is_current",
    "is_opaque_id",
    "iter_documents",
    "iter_query",
    "latest_checkpoint",
    "leaf_hash_at",
    "load_private_key",
    "load_public_key",
    "migrate",
    "newest_cosignatures",
    "query",
    "subject_history",
    "use_entry_mac",
    "utc_now",
    "verify_consistency",
    "verify_inclusion",
    "verify_log",
    "verify_subtree_consistency",
    "verify_subtree_inclusion",
    "write_csv",
    "write_html",
    "write_jsonl",
]
