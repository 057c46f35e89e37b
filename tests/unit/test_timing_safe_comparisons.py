"""Secrets are compared in constant time.

Tags, MACs and signatures are checked inside `cryptography` (AES-GCM, AES key wrap,
Ed25519), which compares in constant time; the one secret the vault compares itself, a
bound token's certificate thumbprint, goes through `vault.crypto.constant_time_equals`
(`hmac.compare_digest`). Blind-index digests and tokens are looked up by the database,
never compared in Python.

This test keeps it that way: it walks the syntax of `vault/` and `audit/` for `==` and
`!=` whose operands are named like secret material (mac, tag, digest, signature, token,
key, hash, root...). Each one found must be listed below with the reason it is not a
secret; a new one fails the test until it uses `constant_time_equals` or is listed.
"""

from __future__ import annotations

import ast
import re

from tests.conftest import REPO_ROOT
from vault.crypto import constant_time_equals

_SECRET_NAME = re.compile(
    r"(^|_)(mac|tag|hmac|secret|signature|sig|password|passphrase|token|digest|key|root|hash|hashe|"
    r"thumbprint)s?($|_)",
    re.IGNORECASE,
)

PUBLIC = {
    ("audit/cpus.py", "folder == root"): "cgroup folders (/sys/fs/cgroup), not a root key",
    # Configuration names and key metadata, not key material.
    ("vault/config.py", "self.key_provider == 'env'"): "provider name from settings",
    ("vault/config.py", "self.key_provider == 'pkcs11'"): "provider name from settings",
    ("vault/startup.py", "settings.resolved_key_provider == 'file'"): "provider name",
    ("vault/config.py", "self.resolved_key_provider != 'pkcs11'"): "provider name",
    ("vault/crypto/hsm.py", "scanned.signature() == self._inventory.signature()"): (
        "the token's key version numbers (an inventory, no key bytes)"
    ),
    ("vault/identity/jwks.py", "self.jwk.key_type != wanted"): "a public JWK's key type",
    # Merkle tree hashes and checkpoint roots: public by design (anyone may verify).
    ("audit/leaf_scan.py", "hashes != [row[2] for row in rows]"): "recomputed public leaf hashes",
    ("audit/leaf_scan.py", "hashes[j] != row[2]"): "recomputed public leaf hashes",
    (
        "audit/merkle_verify.py",
        "_root_from_inclusion(leaf_index, tree_size, leaf_hash, proof) != root",
    ): "public tree root",
    ("audit/merkle_verify.py", "computed != subtree_root"): "public tree root",
    ("audit/merkle_verify.py", "computed != root"): "public tree root",
    ("audit/merkle_verify.py", "old != subtree_root"): "public tree root",
    ("audit/merkle_verify.py", "subtree_root != EMPTY_ROOT"): "public constant",
    ("audit/verify.py", "checkpoint.root_hash != bytes(root)"): "public checkpoint root",
    ("audit/verify.py", "expected != root"): "public checkpoint root",
    ("audit/integrator.py", "grown.hashes != tree.hashes"): "public compact-range hashes",
    ("audit/integrator.py", "stored.hashes != base.hashes"): "public compact-range hashes",
    ("audit/last_signed.py", "tree.root() != checkpoint.root_hash"): "public checkpoint root",
    ("audit/restore.py", "tree.root() != witnessed.root_hash"): "public witnessed root",
    ("audit/witness/cli.py", "vkey.read_text().strip() != signer.verifier_key"): "public key",
    ("audit/witness/protocol.py", "latest.root_hash != checkpoint.root_hash"): "public root",
    # Key ids are public names of public keys (C2SP notes, receipts).
    ("audit/checkpoint.py", "sig[:4] == self._id_for(name)"): "public key id",
    ("audit/checkpoint.py", "name == self.key_name"): "public key name",
    ("audit/checkpoint.py", "sig[:4] == self._id_for(self.key_name)"): "public key id",
    ("vault/web/console/proofs.py", "raw[:4] == verifier.key_id_for(name)"): "public key id",
    ("vault/web/console/proofs.py", "mine != proof.leaf_hash"): "recomputed public leaf hash",
    (
        "vault/consent/receipts.py",
        "signature.get('kid') != ed25519_key_id(public_pem)",
    ): "public key id",
    # A one-time link is a signed token verified first; its id's SHA-256 then finds its
    # row in the database (an index lookup, in SQL): the hash of a 128-bit random id
    # whose signature already checked is no secret to guess byte by byte.
    ("vault/storage/customer_links.py", "c.link_hash == link_hash"): "looked up in SQL",
    # Names of things, not secrets.
    ("audit/export.py", "key == 'decision'"): "a column name",
    ("vault/api/interceptors.py", "key == 'authorization'"): "a metadata header name",
    ("vault/policy/model_config.py", "key != expected"): "a model section key",
    ("vault/policy/model_config.py", "tokens != expected"): "parsed matcher tokens",
    # File metadata used to notice changes on disk.
    ("vault/crypto/providers.py", "self._stat_signature() == self._signature"): "file stat",
    (
        "vault/policy/watcher.py",
        "stat_signature(self._directory) != self._signature()",
    ): "file stat",
}


def _names(node: ast.expr) -> list[str]:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [node.attr]
    if isinstance(node, ast.Subscript):
        return _names(node.value)
    if isinstance(node, ast.Call):
        return _names(node.func)
    return []


def _is_sql(node: ast.expr) -> bool:
    """A SQLAlchemy column expression builds SQL; the database compares, not Python."""
    return ".c." in ast.unparse(node)


def _is_length(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "len"


def comparisons_in(source: str) -> set[str]:
    """The `==`/`!=` comparisons in `source` with an operand named like a secret."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        if not any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
            continue
        operands = [node.left, *node.comparators]
        if any(_is_sql(o) or _is_length(o) for o in operands):
            continue
        if any(_SECRET_NAME.search(n) for o in operands for n in _names(o)):
            found.add(ast.unparse(node))
    return found


def secret_looking_comparisons() -> set[tuple[str, str]]:
    found = set()
    for package in ("vault", "audit"):
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            # (the generated code lives in clients/python, outside these packages)
            relative = path.relative_to(REPO_ROOT).as_posix()
            source = path.read_text(encoding="utf-8")
            found |= {(relative, text) for text in comparisons_in(source)}
    return found


def test_every_comparison_of_secret_looking_values_is_known_to_be_public() -> None:
    unexplained = secret_looking_comparisons() - PUBLIC.keys()
    assert not unexplained, (
        "compare secrets with vault.crypto.constant_time_equals, or list why these are public: "
        f"{sorted(unexplained)}"
    )


def test_the_list_holds_no_stale_entries() -> None:
    assert set(PUBLIC) <= secret_looking_comparisons()


def test_the_scan_catches_plain_comparisons_of_secrets_and_passes_the_safe_ones() -> None:
    source = """
def check(mac, expected_mac, row, token, blob):
    a = mac == expected_mac
    b = row.signature != token
    c = hmac.compare_digest(mac, expected_mac)
    d = len(token) == 32
    e = tokens.c.token == token
    f = blob == b""
"""
    assert comparisons_in(source) == {"mac == expected_mac", "row.signature != token"}


def test_constant_time_equals_compares_bytes() -> None:
    assert constant_time_equals(b"tag", b"tag")
    assert not constant_time_equals(b"tag", b"tah")
    assert not constant_time_equals(b"tag", b"tag!")
