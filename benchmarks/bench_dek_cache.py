"""Per-read cost of the data key: file provider against a PKCS#11 token (SoftHSM2),
each with and without the key ring's cache of unwrapped data keys.

A read of one subject unwraps its data key (`KeyRing.unwrap`) and opens its sealed
fields. This measures, in-process and on this machine, the median cost per read of
`--subjects` subjects read round-robin (so every read after the first pass is a cache
hit when the cache holds them all), for:

- the key file provider (`local-file`), the KEK in process memory;
- the PKCS#11 provider over a fresh SoftHSM2 token (a temporary folder), the KEK in
  the token: every unwrap is `C_UnwrapKey` + reading the session key + destroying it;

each without a cache and with one (`DataKeyCache`, sized to hold every subject). It
also prints the unwrap alone. SoftHSM2 is a software token in the same process: a
network HSM adds its round trip to every uncached unwrap, which is what the cache saves.

    .venv/bin/python benchmarks/bench_dek_cache.py [--subjects 1000] [--fields 12]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from vault.crypto import (
    DataKeyCache,
    FieldProvenance,
    KeyProvider,
    KeyRing,
    LocalKeyFileProvider,
    WrappedDataKey,
)

SOFTHSM_MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
)
TOKEN_LABEL = "bench"
REPEATS = 5


def _softhsm_provider(folder: Path) -> KeyProvider | None:
    util = shutil.which("softhsm2-util")
    module = next((m for m in SOFTHSM_MODULES if Path(m).exists()), None)
    if util is None or module is None:
        return None
    (folder / "tokens").mkdir(parents=True)
    conf = folder / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {folder / 'tokens'}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    pin = os.urandom(8).hex()
    subprocess.run(
        [util, "--init-token", "--free", "--label", TOKEN_LABEL, "--so-pin", "0000", "--pin", pin],
        check=True,
        capture_output=True,
    )
    from vault.crypto.hsm import Pkcs11Config, Pkcs11KeyProvider

    provider = Pkcs11KeyProvider(Pkcs11Config(module, TOKEN_LABEL, pin))
    provider.initialize()
    return provider


def _subjects(ring: KeyRing, count: int, fields: int) -> list[tuple[WrappedDataKey, list[bytes]]]:
    provenance = FieldProvenance(1, "bench", 0)
    made = []
    for i in range(count):
        dek, wrapped = ring.new_data_key()
        sealer = ring.sealer(dek, "acme", f"s{i}")
        made.append((wrapped, [sealer.seal(f"f{n}", b"x" * 24, provenance) for n in range(fields)]))
    return made


def _per_read_us(
    ring: KeyRing, subjects: list[tuple[WrappedDataKey, list[bytes]]], with_fields: bool
) -> float:
    provenance = FieldProvenance(1, "bench", 0)

    def one_pass() -> None:
        for i, (wrapped, sealed) in enumerate(subjects):
            dek = ring.unwrap(wrapped)
            if with_fields:
                sealer = ring.sealer(dek, "acme", f"s{i}")
                for n, value in enumerate(sealed):
                    sealer.open(f"f{n}", value, provenance)

    one_pass()  # warm: fills the cache when there is one
    runs = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        one_pass()
        runs.append((time.perf_counter() - start) / len(subjects) * 1e6)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=1000)
    parser.add_argument("--fields", type=int, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cv-bench-dek-") as tmp:
        folder = Path(tmp)
        providers: dict[str, Callable[[], KeyProvider | None]] = {
            "local-file": lambda: LocalKeyFileProvider.create(folder / "keys" / "master.json"),
            "pkcs11 (SoftHSM2)": lambda: _softhsm_provider(folder / "softhsm"),
        }
        print(f"{args.subjects} subjects, {args.fields} fields each; median us per read")
        print(f"{'provider':<20} {'cache':<6} {'unwrap':>10} {'read':>10}")
        for name, make in providers.items():
            provider = make()
            if provider is None:
                print(f"{name:<20} skipped: SoftHSM2 is not installed")
                continue
            subjects = _subjects(KeyRing(provider), args.subjects, args.fields)
            for cached in (False, True):
                cache = DataKeyCache(args.subjects, 3600.0) if cached else None
                ring = KeyRing(provider, dek_cache=cache)
                unwrap = _per_read_us(ring, subjects, with_fields=False)
                read = _per_read_us(ring, subjects, with_fields=True)
                label = "yes" if cached else "no"
                print(f"{name:<20} {label:<6} {unwrap:>10.1f} {read:>10.1f}")
            provider.close()


if __name__ == "__main__":
    main()
