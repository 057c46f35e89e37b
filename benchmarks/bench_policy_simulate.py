"""`policy simulate` over 100,000 recorded decisions: the replay against a draft, end to end.

Builds a migrated SQLite vault database in a temporary folder, keeps the real policy as
the served version (`PolicyVersions.record`, as start-up does), and appends 100,000
audit entries made by 400 callers, each with its own roles, clearance and department and a
handful of habitual questions drawn from the real vocabulary (actions, purposes, views,
classes): a couple of thousand distinct questions, as a real log repeats the same ones.
Then it times, on this machine and in this run, what the
SimulatePolicy RPC does after authorizing: read the window from the log, replay every
entry against the kept version and a draft (one line removed, one clearance tightened),
diff the decision matrix, and build the response message. Target (issue 25): < 10 s.

    .venv/bin/python benchmarks/bench_policy_simulate.py [--entries 100000]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import audit
from vault.api.whatif_messages import simulation_message
from vault.clock import SystemClock
from vault.fields.dictionary import DataDictionary
from vault.policy import SENSITIVITY_CLASSES, Action, PolicyEngine
from vault.policy.sources import POLICY_FILE
from vault.storage import migrate
from vault.storage.db import Database, create_engine
from vault.whatif.changes import Side
from vault.whatif.simulate import draft_engine, simulate
from vault.whatif.versions import PolicyVersions, descriptors

REPO_ROOT = Path(__file__).resolve().parents[1]
POLICIES = REPO_ROOT / "policies"
TARGET_SECONDS = 10.0
BATCH = 5_000


CALLERS = 400
"""Distinct callers; each keeps its roles, clearance and department, as credentials do."""
HABITS = 6
"""The (action, purpose, resource) questions each caller asks (its daily work)."""


def _entries(count: int, version: str, engine: PolicyEngine) -> list[audit.AuditEntry]:
    rng = random.Random(25)
    roles = sorted(engine.roles)
    purposes = sorted(engine.purposes)
    resources = [
        "*",
        *(f"class:{c}" for c in SENSITIVITY_CLASSES),
        *(f"view:{v}" for v in engine.views),
    ]
    actions = [Action.SUBJECT_READ, Action.SUBJECT_FIND, Action.SUBJECT_EXPORT, Action.FIELD_CLEAR,
               Action.CONSENT_READ, Action.SUBJECT_CREATE, Action.TOKENIZE]  # fmt: skip
    callers = []
    for number in range(CALLERS):
        held = tuple(sorted(rng.sample(roles, rng.choice((1, 1, 1, 2)))))
        attributes = {"clearance": rng.choice(("0", "2", "3"))}
        if rng.random() < 0.2:
            attributes["department"] = "marketing"
        habits = []
        for _ in range(HABITS):
            action = rng.choice(actions)
            resource = rng.choice(resources) if action.needs_purpose else "*"
            purpose = rng.choice(purposes) if action.needs_purpose else ""
            habits.append((action, purpose, resource))
        callers.append((f"caller-{number}", held, attributes, habits))
    start = datetime.now(UTC) - timedelta(days=1)
    out = []
    for i in range(count):
        actor, held, attributes, habits = rng.choice(callers)
        action, purpose, resource = rng.choice(habits)
        extra = {"policy_action": action.value, "policy_resource": resource, **attributes}
        out.append(
            audit.AuditEntry(
                time=start + timedelta(microseconds=i * 500),
                actor=actor,
                actor_roles=held,
                tenant="acme",
                action="GetSubject",
                decision=audit.ALLOW,
                purpose=purpose,
                policy_version=version,
                subject_ids=(f"sub_{rng.getrandbits(128):032x}",),
                extra=extra,
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cv-bench-simulate-") as folder:
        engine = create_engine(f"sqlite:///{Path(folder) / 'vault.db'}")
        migrate.upgrade(engine)
        audit.migrate(engine)
        policy = PolicyEngine.from_dir(POLICIES)
        dictionary = DataDictionary.from_file(POLICIES / "data_dictionary.yaml")
        versions = PolicyVersions(Database(engine), dictionary, SystemClock())
        policy.on_version(versions.record)
        began = time.perf_counter()
        entries = _entries(args.entries, policy.version, policy)
        with engine.begin() as conn:
            for i in range(0, len(entries), BATCH):
                audit.append_in(conn, entries[i : i + BATCH])
        print(f"setup: {len(entries):,} entries written in {time.perf_counter() - began:.1f} s")

        csv = policy.texts[POLICY_FILE]
        csv = csv.replace(
            "p, analyst, *, subjects:read, view:analytics, analytics, 0, *, allow\n", ""
        )
        csv = csv.replace(
            "class:confidential, support, 2, *, allow", "class:confidential, support, 3, *, allow"
        )
        fields = descriptors(versions.fields)
        began = time.perf_counter()
        draft = draft_engine({POLICY_FILE: csv}, policy.texts)

        def kept(version: str) -> Side | None:
            found = versions.engine(version)
            return None if found is None else Side(*found)

        result = simulate(
            Side(policy, fields),
            Side(draft, fields),
            entries=audit.iter_documents(
                engine, tenant="acme", since=datetime.now(UTC) - timedelta(days=30)
            ),
            version_side=kept,
            fail_on=["widen-restricted"],
        )
        message = simulation_message(result)
        elapsed = time.perf_counter() - began
        replay = result.replay
        assert replay is not None
        print(
            f"replayed {replay.replayed:,} of {replay.scanned:,} entries "
            f"({replay.distinct_questions:,} distinct questions), {replay.changed:,} changed, "
            f"{len(replay.groups)} groups; matrix {result.matrix.cells:,} cells, "
            f"{len(result.matrix.changes)} changed; response {message.ByteSize():,} bytes"
        )
        verdict = "OK" if elapsed < TARGET_SECONDS else "OVER TARGET"
        print(f"simulate: {elapsed:.2f} s (target < {TARGET_SECONDS:.0f} s): {verdict}")
        engine.dispose()


if __name__ == "__main__":
    main()
