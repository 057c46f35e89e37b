"""A fresh SoftHSM2 token for a test: its own token directory and configuration in a
temporary folder (SOFTHSM2_CONF), initialized with `softhsm2-util`.

Without SoftHSM2 (Debian package `softhsm2`) the test is skipped with a clear message,
except under CI=true, where it fails instead: CI must never quietly skip the HSM tests
(`.ci/run` installs the package when it is missing).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
)
TOKEN_LABEL = "customer-vault-test"
SO_PIN = "so-pin-0000"


@dataclass(frozen=True)
class SoftHsmToken:
    """A token made for one test: the module to load, its label and user PIN."""

    module: str
    label: str
    pin: str = field(repr=False)
    conf: Path


def _missing(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; under CI=true the HSM tests must run")
    pytest.skip(message)


def new_token(folder: Path, monkeypatch: pytest.MonkeyPatch) -> SoftHsmToken:
    """Initialize a token under `folder` and point SOFTHSM2_CONF at it (for this test)."""
    util = shutil.which("softhsm2-util")
    module = next((m for m in MODULE_CANDIDATES if Path(m).exists()), None)
    if util is None or module is None:
        _missing("SoftHSM2 is not installed (apt-get install -y softhsm2)")
    assert util is not None and module is not None
    tokens = folder / "tokens"
    tokens.mkdir(parents=True)
    conf = folder / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    pin = os.urandom(8).hex()
    subprocess.run(
        [util, "--init-token", "--free", "--label", TOKEN_LABEL, "--so-pin", SO_PIN, "--pin", pin],
        check=True,
        capture_output=True,
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
    )
    # SoftHSM reads its configuration and lists tokens when the library is initialized:
    # a library already loaded in this process (an earlier test) starts over.
    import pkcs11

    pkcs11.lib(module).reinitialize()
    return SoftHsmToken(module, TOKEN_LABEL, pin, conf)
