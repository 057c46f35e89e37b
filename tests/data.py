"""Test data more than one test module uses: one home, so test modules never import
each other (`tests/unit/test_suite_layout.py` checks that).

Plain values only: the vendored test vectors' folder, the people the integration tests
store, the principals they call as, and the policy's expected view matrix.
"""

from __future__ import annotations

from pathlib import Path

VECTORS = Path(__file__).resolve().parent / "vectors"
"""`tests/vectors/`: the test vectors the suite carries (see its README.md)."""
