"""The witness (C2SP tlog-witness): what it cosigns, what it refuses, what it remembers.

Real parts: a real SQLite state file, real Ed25519 keys, real proofs from a real tree,
and (last tests) the real HTTP server on a loopback port.
"""

from __future__ import annotations

import base64
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from audit import Checkpoint, CheckpointSigner, CosignatureVerifier, generate_signing_key
from audit.cosignature import CosignatureSigner, cosigner_key_id
from audit.errors import CheckpointError, KeyFormatError
from audit.merkle import consistency_proof, leaf_hash, root_of
from audit.witness import KnownLog, Witness, WitnessClient, WitnessState
from audit.witness.client import Conflict, WitnessRefusedError
from audit.witness.server import WitnessServer

ORIGIN = "example.com/vault/audit"
NOW = 1_767_000_000
LEAVES = [leaf_hash(f"entry {i}".encode()) for i in range(64)]


class Log:
    """A log's signer and its honest tree."""

    def __init__(self, tmp_path: Path, name: str = "log") -> None:
        generate_signing_key(tmp_path / f"{name}.pem")
        self.signer = CheckpointSigner((tmp_path / f"{name}.pem").read_bytes(), ORIGIN)

    def note(self, size: int, leaves: list[bytes] = LEAVES) -> str:
        return self.signer.sign(Checkpoint(ORIGIN, size, root_of(leaves[:size])))


def request(old: int, proof: list[bytes], note: str) -> bytes:
    lines = [f"old {old}\n", *(base64.b64encode(h).decode() + "\n" for h in proof), "\n"]
    return ("".join(lines) + note).encode()


@pytest.fixture
def log(tmp_path: Path) -> Log:
    return Log(tmp_path)


@pytest.fixture
def cosigner(tmp_path: Path) -> CosignatureSigner:
    generate_signing_key(tmp_path / "witness.pem")
    return CosignatureSigner((tmp_path / "witness.pem").read_bytes(), "witness.example/w1")


def open_witness(tmp_path: Path, log: Log, cosigner: CosignatureSigner) -> Witness:
    state = WitnessState(tmp_path / "witness.db")
    return Witness(cosigner, state, [KnownLog(ORIGIN, log.signer.verifier())], lambda: NOW)


@pytest.fixture
def witness(tmp_path: Path, log: Log, cosigner: CosignatureSigner) -> Witness:
    return open_witness(tmp_path, log, cosigner)


def cosigned_size(witness: Witness) -> int:
    reply = witness.latest(ORIGIN)
    assert reply.status == 200
    return int(reply.body.decode().split("\n")[1])


def test_the_first_checkpoint_is_cosigned_in_the_c2sp_format(
    witness: Witness, log: Log, cosigner: CosignatureSigner
) -> None:
    reply = witness.add_checkpoint(request(0, [], log.note(10)))
    assert reply.status == 200
    line = reply.body.decode()
    assert line.startswith("\u2014 witness.example/w1 ") and line.endswith("\n")
    raw = base64.b64decode(line.split(" ")[2])
    public = base64.b64decode(cosigner.verifier_key.split("+", 2)[2])[1:]
    assert raw[:4] == cosigner_key_id("witness.example/w1", public)  # algorithm 0x04
    assert struct.unpack(">Q", raw[4:12]) == (NOW,)
    assert len(raw) == 4 + 8 + 64
    verifier = CosignatureVerifier.from_verifier_key(cosigner.verifier_key)
    cosigned = verifier.verify_line(Checkpoint(ORIGIN, 10, root_of(LEAVES[:10])), line)
    assert cosigned.timestamp == NOW
    # The same line, appended to the note, makes a cosigned note the verifier finds.
    assert verifier.find(log.note(10) + line).checkpoint.size == 10
    with pytest.raises(CheckpointError):
        verifier.verify_line(Checkpoint(ORIGIN, 10, root_of(LEAVES[1:11])), line)


def test_a_valid_consistency_proof_advances_the_witness(witness: Witness, log: Log) -> None:
    assert witness.add_checkpoint(request(0, [], log.note(10))).status == 200
    for old, new in ((10, 13), (13, 32), (32, 33), (33, 64)):
        proof = consistency_proof(LEAVES, old, new)
        assert witness.add_checkpoint(request(old, proof, log.note(new))).status == 200
    assert cosigned_size(witness) == 64


@pytest.mark.parametrize("which", [0, 1, -1])
def test_a_consistency_proof_with_any_hash_changed_is_refused_422(
    witness: Witness, log: Log, which: int
) -> None:
    assert witness.add_checkpoint(request(0, [], log.note(13))).status == 200
    proof = consistency_proof(LEAVES, 13, 40)
    proof[which] = leaf_hash(b"forged")
    assert witness.add_checkpoint(request(13, proof, log.note(40))).status == 422
    assert cosigned_size(witness) == 13


def test_a_rewritten_tree_with_its_own_honest_proof_is_refused_422(
    witness: Witness, log: Log
) -> None:
    """The attack: rewrite entry 5, rebuild the tree, and prove consistency from the
    rewritten tree's own prefix. The proof is right about the rewritten tree, which
    does not extend the tree the witness cosigned."""
    assert witness.add_checkpoint(request(0, [], log.note(13))).status == 200
    rewritten = [*LEAVES[:5], leaf_hash(b"mallory"), *LEAVES[6:]]
    proof = consistency_proof(rewritten, 13, 40)
    reply = witness.add_checkpoint(request(13, proof, log.note(40, rewritten)))
    assert reply.status == 422
    assert cosigned_size(witness) == 13


def test_the_wrong_old_size_gets_409_with_the_latest_size(witness: Witness, log: Log) -> None:
    assert witness.add_checkpoint(request(0, [], log.note(20))).status == 200
    reply = witness.add_checkpoint(request(0, [], log.note(30)))
    assert (reply.status, reply.content_type, reply.body) == (409, "text/x.tlog.size", b"20\n")
    reply = witness.add_checkpoint(request(10, consistency_proof(LEAVES, 10, 30), log.note(30)))
    assert (reply.status, reply.body) == (409, b"20\n")


def test_replaying_an_old_checkpoint_is_refused(witness: Witness, log: Log) -> None:
    old_note = log.note(10)
    assert witness.add_checkpoint(request(0, [], old_note)).status == 200
    assert (
        witness.add_checkpoint(request(10, consistency_proof(LEAVES, 10, 30), log.note(30))).status
        == 200
    )
    # As first sent, and with the old size the witness now has: never rolled back.
    assert witness.add_checkpoint(request(0, [], old_note)).status == 409
    assert witness.add_checkpoint(request(30, [], old_note)).status == 400
    assert witness.add_checkpoint(request(10, [], old_note)).status == 409
    assert cosigned_size(witness) == 30


def test_a_fork_at_the_same_size_is_refused_409(witness: Witness, log: Log) -> None:
    assert witness.add_checkpoint(request(0, [], log.note(16))).status == 200
    forked = [*LEAVES[:15], leaf_hash(b"other")]
    reply = witness.add_checkpoint(request(16, [], log.note(16, forked)))
    assert (reply.status, reply.body) == (409, b"16\n")
    # The same tree again is fine (a fresh cosignature of what it already vouched for).
    assert witness.add_checkpoint(request(16, [], log.note(16))).status == 200


def test_the_witness_remembers_across_a_restart(
    tmp_path: Path, log: Log, cosigner: CosignatureSigner
) -> None:
    first = open_witness(tmp_path, log, cosigner)
    assert first.add_checkpoint(request(0, [], log.note(25))).status == 200
    del first
    again = open_witness(tmp_path, log, cosigner)
    assert cosigned_size(again) == 25
    assert again.add_checkpoint(request(0, [], log.note(5))).status == 409
    forked = [*LEAVES[:3], leaf_hash(b"x"), *LEAVES[4:]]
    proof = consistency_proof(forked, 25, 30)
    assert again.add_checkpoint(request(25, proof, log.note(30, forked))).status == 422
    proof = consistency_proof(LEAVES, 25, 30)
    assert again.add_checkpoint(request(25, proof, log.note(30))).status == 200


def test_unknown_logs_other_keys_and_malformed_requests(
    tmp_path: Path, witness: Witness, log: Log
) -> None:
    stranger = Log(tmp_path, "stranger")
    assert witness.add_checkpoint(request(0, [], stranger.note(3))).status == 403
    other_origin = log.signer.sign(Checkpoint("other.example/log", 3, root_of(LEAVES[:3])))
    assert witness.add_checkpoint(request(0, [], other_origin)).status == 404
    note = log.note(8)
    for body in (
        b"old 01\n\n" + note.encode(),
        b"old 3\nnot base64!\n\n" + note.encode(),
        b"old 0\n" + note.encode(),
        b"\xff\xfe",
        request(9, [], note),  # old above the checkpoint's size
        request(0, [LEAVES[0]], note),  # a proof from size 0
        request(3, [LEAVES[0]] * 64, note),  # more than 63 proof lines
    ):
        assert witness.add_checkpoint(body).status == 400
    assert witness.latest(ORIGIN).status == 404  # nothing was stored


def test_racing_requests_with_the_same_old_size_cosign_only_one(witness: Witness, log: Log) -> None:
    assert witness.add_checkpoint(request(0, [], log.note(8))).status == 200
    statuses: list[int] = []
    bodies = [request(8, consistency_proof(LEAVES, 8, n), log.note(n)) for n in range(9, 41)]
    threads = [
        threading.Thread(target=lambda b=b: statuses.append(witness.add_checkpoint(b).status))
        for b in bodies
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [409] * (len(bodies) - 1)


def test_witness_keys_are_checked(cosigner: CosignatureSigner, log: Log) -> None:
    verifier = CosignatureVerifier.from_verifier_key(cosigner.verifier_key)
    assert verifier.name == "witness.example/w1"
    name, key_id, material = cosigner.verifier_key.split("+", 2)
    for bad in (
        f"{name}+00000000+{material}",
        f"{name}+{key_id}",
        log.signer.verifier_key,  # an Ed25519 note key (0x01), not a cosigner key (0x04)
    ):
        with pytest.raises(KeyFormatError):
            CosignatureVerifier.from_verifier_key(bad)


@pytest.fixture
def served(witness: Witness) -> Iterator[WitnessServer]:
    server = WitnessServer(witness, "127.0.0.1", 0)
    server.start()
    yield server
    server.stop()


def test_the_http_server_speaks_the_protocol(
    served: WitnessServer, log: Log, cosigner: CosignatureSigner
) -> None:
    client = WitnessClient(
        f"http://127.0.0.1:{served.port}",
        CosignatureVerifier.from_verifier_key(cosigner.verifier_key),
    )
    first = Checkpoint(ORIGIN, 10, root_of(LEAVES[:10]))
    cosigned = client.add_checkpoint(0, [], log.note(10), first)
    assert not isinstance(cosigned, Conflict)
    assert cosigned.checkpoint == first
    later = Checkpoint(ORIGIN, 20, root_of(LEAVES[:20]))
    assert client.add_checkpoint(0, [], log.note(20), later) == Conflict(10)
    proof = consistency_proof(LEAVES, 10, 20)
    assert not isinstance(client.add_checkpoint(10, proof, log.note(20), later), Conflict)
    forged = [leaf_hash(b"x"), *LEAVES[1:]]
    bad = Checkpoint(ORIGIN, 30, root_of(forged[:30]))
    with pytest.raises(WitnessRefusedError) as refused:
        client.add_checkpoint(20, consistency_proof(forged, 20, 30), log.note(30, forged), bad)
    assert refused.value.status == 422
    latest = client.latest(ORIGIN)
    assert latest is not None
    assert client.verifier.find(latest).checkpoint == later
    assert client.latest("unknown.example/log") is None
