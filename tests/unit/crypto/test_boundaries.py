"""Only `vault/crypto/` may import `cryptography` (docs/architecture.md)."""

from __future__ import annotations

import ast

from tests.conftest import REPO_ROOT


def _imports_cryptography(source: str) -> bool:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        if any(name == "cryptography" or name.startswith("cryptography.") for name in names):
            return True
    return False


def test_only_the_crypto_package_imports_cryptography() -> None:
    vault = REPO_ROOT / "vault"
    offenders = [
        str(path.relative_to(REPO_ROOT))
        for path in sorted(vault.rglob("*.py"))
        if not path.is_relative_to(vault / "crypto")
        and not path.is_relative_to(vault / "api" / "gen")
        and _imports_cryptography(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
