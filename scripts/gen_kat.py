"""Write tests/vectors/kat/*.json: known answers for the project's own formats.

    .venv/bin/python scripts/gen_kat.py          # rewrite the files from the code
    .venv/bin/python scripts/gen_kat.py --check  # exit 1 when a file differs

Run it only when a format changes on purpose (and say so in the commit): the files
are what `tests/unit/test_known_answers.py` compares the code against, so a format
that changes by accident fails the suite. The tests never run this script.

The inputs are fixed below; the keys are test keys derived from fixed labels.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import kat

NOTE = "Test keys fixed for known answers only; never use them for anything else."


def _key(label: str) -> str:
    return hashlib.sha256(f"customer-vault known answer: {label}".encode()).hexdigest()


SEALED_VALUE = [
    {
        "dek": _key("data key 1"),
        "dek_id": 1,
        "tenant": "acme",
        "subject_id": "sub_kat0000000000000000000000000001",
        "field": "email",
        "plaintext": "ada.lovelace@example.com",
        "version": 1,
        "written_by": "order-service",
        "written_at": 1_768_469_400_000_000,
        "nonce": "000102030405060708090a0b",
        "field_set": {"email": 1, "given_name": 1},
        "field_set_nonce": "0b0a09080706050403020100",
    },
    {
        "dek": _key("data key 2"),
        "dek_id": 4_000_000_000,
        "tenant": "t\u00e9nant-\u00fcmlaut",
        "subject_id": "sub_kat0000000000000000000000000002",
        "field": "notes",
        "plaintext": "Z\u00fcrich \u2014 \u65e5\u672c",
        "version": 2**40,
        "written_by": "dpo-\u00e9quipe",
        "written_at": -1,
        "nonce": "ffeeddccbbaa998877665544",
        "field_set": {"notes": 2**40, "email": 3, "phone": 17},
        "field_set_nonce": "5a5a5a5a5a5a5a5a5a5a5a5a",
    },
    {
        "dek": _key("data key 3"),
        "dek_id": 0,
        "tenant": "acme",
        "subject_id": "sub_kat0000000000000000000000000003",
        "field": "city",
        "plaintext": "",
        "version": 7,
        "written_by": "",
        "written_at": 0,
        "nonce": "5a5a5a5a5a5a5a5a5a5a5a5a",
        "field_set": {},
        "field_set_nonce": "000000000000000000000000",
    },
]

SEALED_VALUE_V1 = [
    {
        # The value tests/unit/crypto/test_sealing.py pinned before this file existed
        # (sealed with a random nonce, recorded here), so it stays readable.
        "dek": bytes(range(32)).hex(),
        "dek_id": 7,
        "tenant": "acme",
        "subject_id": "sub_aaaaaaaaaaaaaaaaaaaaaaaaaa",
        "field": "email",
        "plaintext": "jane@example.com",
        "nonce": "6a33c25c0fde3d28855cd29d",
    },
    {
        "dek": _key("data key 1"),
        "dek_id": 1,
        "tenant": "acme",
        "subject_id": "sub_kat0000000000000000000000000001",
        "field": "email",
        "plaintext": "ada.lovelace@example.com",
        "nonce": "000102030405060708090a0b",
    },
    {
        "dek": _key("data key 2"),
        "dek_id": 4_000_000_000,
        "tenant": "t\u00e9nant-\u00fcmlaut",
        "subject_id": "sub_kat0000000000000000000000000002",
        "field": "notes",
        "plaintext": "Z\u00fcrich \u2014 \u65e5\u672c",
        "nonce": "ffeeddccbbaa998877665544",
    },
    {
        "dek": _key("data key 3"),
        "dek_id": 0,
        "tenant": "acme",
        "subject_id": "sub_kat0000000000000000000000000003",
        "field": "city",
        "plaintext": "",
        "nonce": "5a5a5a5a5a5a5a5a5a5a5a5a",
    },
]

FIELDS_BLOB = [
    {
        "dek": _key("data key 1"),
        "tenant": "acme",
        "subject_id": "sub_kat0000000000000000000000000001",
        "fields": [
            {
                "field": "given_name",
                "plaintext": "Augusta Ada",
                "version": 1,
                "written_by": "order-service",
                "written_at": 1_768_469_400_000_000,
                "nonce": "101112131415161718191a1b",
            },
            {
                "field": "email",
                "plaintext": "ada.lovelace@example.com",
                "version": 2,
                "written_by": "dpo-\u00e9quipe",
                "written_at": 1_768_469_500_000_001,
                "nonce": "202122232425262728292a2b",
            },
        ],
        "field_set_nonce": "303132333435363738393a3b",
    },
    {
        "dek": _key("data key 2"),
        "tenant": "t\u00e9nant-\u00fcmlaut",
        "subject_id": "sub_kat0000000000000000000000000002",
        "fields": [
            {
                "field": "notes",
                "plaintext": "",
                "version": 2**40,
                "written_by": "",
                "written_at": -1,
                "nonce": "ffeeddccbbaa998877665544",
            },
        ],
        "field_set_nonce": "5a5a5a5a5a5a5a5a5a5a5a5a",
    },
]

BLIND_INDEX = [
    {
        "root_secret": _key("blind index root"),
        "tenant": "acme",
        "field": "email",
        "raw": " Ada.Lovelace@Example.COM ",
        "today": "2026-01-15",
    },
    {
        "root_secret": _key("blind index root"),
        "tenant": "globex",
        "field": "email",
        "raw": " Ada.Lovelace@Example.COM ",
        "today": "2026-01-15",
    },
    {
        "root_secret": _key("blind index root"),
        "tenant": "acme",
        "field": "phone",
        "raw": "+44 20 7946 0018",
        "today": "2026-01-15",
    },
    {
        "root_secret": _key("blind index root"),
        "tenant": "acme",
        "field": "national_id",
        "raw": "QQ 12 34 56 C",
        "today": "2026-01-15",
    },
    {
        # Token-key version 2: the same digest, a token that says its version.
        "root_secret": _key("blind index root"),
        "key_version": 2,
        "tenant": "acme",
        "field": "email",
        "raw": " Ada.Lovelace@Example.COM ",
        "today": "2026-01-15",
    },
]

_ISSUER = {
    "controller": "Acme Ltd",
    "controller_contact": "privacy@acme.example",
    "policy_url": "https://acme.example/privacy",
    "pii_categories": ["country", "email", "given_name", "national_id"],
    "sensitive_categories": ["national_id"],
}
_PURPOSES = {
    "marketing": {
        "legal_basis": "consent",
        "description": "newsletters",
        "marketing": True,
    },
    "sharing": {
        "legal_basis": "consent",
        "description": "partners",
        "sharing": True,
    },
    "support": {"legal_basis": "contract", "description": "help"},
}
_MARKERS = {"all_marketing": "marketing", "all_sharing": "sharing"}

CONSENT_RECEIPT = [
    {
        "seed": _key("receipt signing key"),
        "issuer": _ISSUER,
        "purposes": _PURPOSES,
        "opt_out_markers": _MARKERS,
        "facts": {
            "receipt_id": "rcpt_kat0000000000000000000000001",
            "subject_id": "sub_kat0000000000000000000000000001",
            "tenant": "acme",
            "issued_at": "2026-01-15T09:30:00+00:00",
            "channel": "web",
            "jurisdiction": "EU",
            "notice_version": "2026-01",
            "evidence_ref": "form-17",
            "consent_version": "3",
            "events": [
                {
                    "purpose": "marketing",
                    "action": "grant",
                    "expires_at": "2027-01-15T09:30:00+00:00",
                },
                {"purpose": "support", "action": "grant"},
                {"purpose": "sharing", "action": "withdraw"},
            ],
        },
    },
    {
        "seed": _key("receipt signing key"),
        "issuer": _ISSUER,
        "purposes": _PURPOSES,
        "opt_out_markers": _MARKERS,
        "facts": {
            "receipt_id": "rcpt_kat0000000000000000000000002",
            "subject_id": "sub_kat0000000000000000000000000001",
            "tenant": "acme",
            "issued_at": "2026-02-01T00:00:00+00:00",
            "channel": "gpc",
            "jurisdiction": "US-CA",
            "notice_version": "2026-01",
            "evidence_ref": "sec-gpc",
            "consent_version": "4",
            "events": [{"purpose": "all_sharing", "action": "withdraw"}],
        },
    },
]

CHECKPOINT_NOTE = [
    {
        "seed": _key("audit checkpoint key"),
        "key_name": "customer-vault/audit",
        "origin": "customer-vault/audit",
        "leaves": [f"entry {n}" for n in range(7)],
    },
    {
        "seed": _key("audit checkpoint key"),
        "key_name": "audit.example.com",
        "origin": "audit.example.com",
        "leaves": ["only entry"],
    },
]

BEARER_TOKEN = [
    {
        "seed": _key("token signing key"),
        "issuer": "customer-vault",
        "audience": "customer-vault",
        "now": "2026-01-15T09:30:00+00:00",
        "ttl_seconds": 600,
        "jti": "00112233445566778899aabbccddeeff",
        "principal": {
            "id": "order-service",
            "tenant": "acme",
            "roles": ["service"],
            "attrs": {},
        },
    },
    {
        "seed": _key("token signing key"),
        "issuer": "customer-vault",
        "audience": "customer-vault",
        "now": "2026-01-15T09:30:00+00:00",
        "ttl_seconds": 3600,
        "jti": "ffeeddccbbaa99887766554433221100",
        "principal": {
            "id": "dpo-1",
            "tenant": "acme",
            "roles": ["dpo", "support_agent"],
            "attrs": {"clearance": "3", "region": "eu-west"},
        },
        "bound_to": "q9Zk3m6F2bXx0m5M3r0gGv6yQ7k8ZpLhT4Wc1aN2sYE",
    },
]


def documents() -> dict[str, dict[str, Any]]:
    fields = kat.dictionary()
    computed = {
        "sealed_value": [
            {**case, "expected": kat.compute_sealed_value(case)} for case in SEALED_VALUE
        ],
        "sealed_value_v1": [
            {**case, "expected": kat.compute_sealed_value_v1(case)} for case in SEALED_VALUE_V1
        ],
        "fields_blob": [
            {**case, "expected": kat.compute_fields_blob(case)} for case in FIELDS_BLOB
        ],
        "fields_blob_v2": [
            {**case, "expected": kat.compute_fields_blob_v2(case)} for case in FIELDS_BLOB
        ],
        "blind_index": [
            {**case, "expected": kat.compute_blind_index(case, fields)} for case in BLIND_INDEX
        ],
        "consent_receipt": [
            {**case, "expected": kat.compute_consent_receipt(case)} for case in CONSENT_RECEIPT
        ],
        "checkpoint_note": [
            {**case, "expected": kat.compute_checkpoint_note(case)} for case in CHECKPOINT_NOTE
        ],
        "bearer_token": [
            {**case, "expected": kat.compute_bearer_token(case)} for case in BEARER_TOKEN
        ],
    }
    return {name: {"note": NOTE, "cases": cases} for name, cases in computed.items()}


def _text(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    stale = []
    kat.KAT.mkdir(parents=True, exist_ok=True)
    for name, document in documents().items():
        path = kat.KAT / f"{name}.json"
        text = _text(document)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path.name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print("known-answer files differ from the code: " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
