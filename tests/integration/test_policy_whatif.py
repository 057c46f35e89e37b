"""Policy what-if and as-of over a log written by real gRPC calls: known draft changes
give exactly the expected groups, and `ExplainEntry` agrees with every recorded
decision and sees a later withdrawal (issue 25)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import Result
from customer_vault_client.gen.customervault.v1 import admin_pb2, audit_pb2
from google.protobuf.message import Message
from typer.testing import CliRunner

import audit
from tests.data import ADA, ADMIN, DPO, GRACE
from tests.integration.consent_support import AGENT, ANALYST, MARKETER, grant, withdraw
from tests.integration.harness import RunningVault, running_vault, settings_for
from vault.api.client import VaultClient, VaultClientError
from vault.cli.main import app
from vault.policy import PolicyEngine
from vault.policy.model_config import parse_model
from vault.policy.sources import POLICY_FILES
from vault.whatif.matrix import MAX_MATRIX_DECISIONS, matrix_decisions

POLICY = Path(__file__).resolve().parents[2] / "policies"
ANALYTICS_READ = "p, analyst, *, subjects:read, view:analytics, analytics, 0, *, allow\n"
AGENT_CONFIDENTIAL = "p, support_agent, *, fields:clear, class:confidential, support, 2, *, allow"


@pytest.fixture(scope="module")
def logged(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningVault, dict[str, str]]]:
    """One vault and a log of reads, a denial, consent and a withdrawal after a read."""
    folder = tmp_path_factory.mktemp("whatif")
    with running_vault(settings_for(folder / "data", None)) as vault:
        service = vault.client()
        ada = service.create(ADA).subject_id
        grace = service.create(GRACE).subject_id
        grant(service, ada, "marketing")
        agent, marketer, analyst = (vault.client(**who) for who in (AGENT, MARKETER, ANALYST))
        for subject in (ada, grace):
            agent.get(subject, "support", "support")
            marketer.get(subject, "marketing", "marketing")  # grace: withheld, no consent
            analyst.get(subject, "analytics", "analytics")
        with pytest.raises(VaultClientError):
            analyst.get(ada, "support", "support")  # denied by the policy
        vault.client(**DPO).get(ada, "full", "data_subject_request", "DSR-2026-1")
        _integrated(vault)
        yield vault, {"ada": ada, "grace": grace}


def _integrated(vault: RunningVault) -> None:
    deadline = time.monotonic() + 30
    query = sa.text("SELECT count(*) FROM audit_entries WHERE leaf_index IS NULL")
    while True:
        with vault.app.db.engine.connect() as conn:
            if conn.execute(query).scalar_one() == 0:
                return
        assert time.monotonic() < deadline, "the integrator never caught up"
        time.sleep(0.05)


def _simulate(client: VaultClient, **files: str) -> admin_pb2.SimulatePolicyResponse:
    request = admin_pb2.SimulatePolicyRequest(
        draft_files=[
            admin_pb2.PolicyFile(name=n.replace("__", "."), content=t) for n, t in files.items()
        ],
        fail_on=["widen-restricted"],
    )
    reply: admin_pb2.SimulatePolicyResponse = client.call(client.admin, "SimulatePolicy", request)
    return reply


def _groups(reply: admin_pb2.SimulatePolicyResponse) -> dict[tuple[str, str, str, str, str], int]:
    kinds = admin_pb2.ChangeKind
    return {
        (kinds.Name(g.kind), g.roles, g.action, g.purpose, g.sensitivity): g.entry_count
        for g in reply.groups
    }


def _strings(message: Message) -> set[str]:
    """Every string value in `message`, however deeply nested (map keys and values too)."""
    found: set[str] = set()
    for field, value in message.ListFields():
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            values = [*value.keys(), *value.values()]
        else:
            values = value if field.is_repeated else [value]
        for item in values:
            if isinstance(item, Message):
                found |= _strings(item)
            elif isinstance(item, str):
                found.add(item)
    return found


def _files() -> dict[str, str]:
    return {name: (POLICY / name).read_text(encoding="utf-8") for name in POLICY_FILES}


def _csv() -> str:
    return (POLICY / "vault_policy.csv").read_text(encoding="utf-8")


def test_the_policy_in_force_and_a_reordered_copy_change_nothing(
    logged: tuple[RunningVault, dict[str, str]],
) -> None:
    vault, _ = logged
    admin = vault.client(**ADMIN)
    same = _simulate(admin)
    assert same.replay.entries_replayed >= 10
    assert same.replay.entries_unknown_version == 0
    assert not same.groups and not same.matrix_changes and not same.failed_checks
    lines = _csv().splitlines(keepends=True)
    rules = [line for line in lines if line.startswith(("p,", "g,"))]
    reordered = "".join(line for line in lines if not line.startswith(("p,", "g,"))) + "".join(
        reversed(rules)
    )
    moved = _simulate(admin, vault_policy__csv=reordered)
    assert moved.draft_version != same.draft_version
    assert not moved.groups and not moved.matrix_changes


def test_removing_a_line_denies_the_reads_it_allowed(
    logged: tuple[RunningVault, dict[str, str]],
) -> None:
    vault, subjects = logged
    reply = _simulate(vault.client(**ADMIN), vault_policy__csv=_csv().replace(ANALYTICS_READ, ""))
    read = ("analyst", "subjects:read", "analytics")
    assert _groups(reply) == {
        ("CHANGE_KIND_ALLOW_TO_DENY", *read, "-"): 2,
        ("CHANGE_KIND_NARROWED", *read, "public"): 2,
        ("CHANGE_KIND_NARROWED", *read, "internal"): 2,
        ("CHANGE_KIND_NARROWED", *read, "confidential"): 2,
    }
    denial = next(g for g in reply.groups if g.kind == admin_pb2.CHANGE_KIND_ALLOW_TO_DENY)
    assert any("default-deny" in c and ANALYTICS_READ.strip() in c for c in denial.causes)
    assert {s for e in denial.examples for s in e.subject_ids} == set(subjects.values())
    assert all(e.leaf_index >= 0 for e in denial.examples)
    narrowed = {tuple(g.fields) for g in reply.groups if g.sensitivity == "confidential"}
    assert narrowed == {("date_of_birth", "email")}
    assert not reply.failed_checks
    # Identifiers and names only: no value the log's subjects hold (compared value by
    # value: a short one such as "gb" may well occur inside a random id).
    assert not _strings(reply) & {*ADA.values(), *GRACE.values()}


def test_adding_a_role_link_allows_the_denied_read_and_fails_the_restricted_gate(
    logged: tuple[RunningVault, dict[str, str]],
) -> None:
    vault, _ = logged
    draft = _csv() + "g, analyst, support_agent, *\n"
    reply = _simulate(vault.client(**ADMIN), vault_policy__csv=draft)
    read = ("analyst", "subjects:read", "support")
    assert _groups(reply) == {
        ("CHANGE_KIND_DENY_TO_ALLOW", *read, "-"): 1,
        ("CHANGE_KIND_WIDENED", *read, "public"): 1,
        ("CHANGE_KIND_WIDENED", *read, "internal"): 1,
        ("CHANGE_KIND_WIDENED", *read, "confidential"): 1,
        ("CHANGE_KIND_WIDENED", *read, "restricted"): 1,
    }
    allowed = next(g for g in reply.groups if g.kind == admin_pb2.CHANGE_KIND_DENY_TO_ALLOW)
    assert any("p, support_agent, *, subjects:read, view:support" in c for c in allowed.causes)
    assert list(reply.failed_checks) == ["widen-restricted"]
    assert any(
        c.role == "analyst" and c.resource == "class:restricted" for c in reply.matrix_changes
    )


def test_tightening_a_clearance_masks_the_confidential_field_shown_clear(
    logged: tuple[RunningVault, dict[str, str]],
) -> None:
    vault, _ = logged
    draft = _csv().replace(AGENT_CONFIDENTIAL, AGENT_CONFIDENTIAL.replace(", 2, ", ", 3, "))
    reply = _simulate(vault.client(**ADMIN), vault_policy__csv=draft)
    assert _groups(reply) == {
        ("CHANGE_KIND_NARROWED", "support_agent", "subjects:read", "support", "confidential"): 2
    }
    (group,) = reply.groups
    assert list(group.fields) == ["notes"]
    assert any("fields:clear on class:confidential" in c for c in group.causes)
    cells = {(c.role, c.action, c.resource): (c.before, c.after) for c in reply.matrix_changes}
    assert cells[("support_agent", "fields:clear", "class:confidential")] == (
        "allow clearance>=2",
        "allow clearance>=3",
    )


def test_changing_a_views_mask_widens_that_field(
    logged: tuple[RunningVault, dict[str, str]],
) -> None:
    vault, _ = logged
    views = (POLICY / "views.yaml").read_text(encoding="utf-8")
    draft = views.replace(
        "      email: masked:email\n      phone: masked:phone_last4",
        "      email: clear\n      phone: masked:phone_last4",
        1,
    )
    assert draft != views
    reply = _simulate(vault.client(**ADMIN), views__yaml=draft)
    assert _groups(reply) == {
        ("CHANGE_KIND_WIDENED", "support_agent", "subjects:read", "support", "confidential"): 2
    }
    (group,) = reply.groups
    assert list(group.fields) == ["email"]
    assert any(
        "views.yaml: view support, field email: masked(email) -> clear" in c for c in group.causes
    )


def test_a_bad_draft_is_refused_naming_file_and_line(
    logged: tuple[RunningVault, dict[str, str]],
) -> None:
    vault, _ = logged
    with pytest.raises(VaultClientError) as refused:
        _simulate(
            vault.client(**ADMIN),
            vault_policy__csv="p, analyst, *, subjects:fly, *, *, 0, *, allow\n",
        )
    assert refused.value.code == "INVALID_ARGUMENT"
    assert any("vault_policy.csv" in d for _, d in refused.value.violations)
    with pytest.raises(VaultClientError) as denied:
        _simulate(vault.client(**MARKETER))
    assert denied.value.code == "PERMISSION_DENIED"


def test_a_draft_matcher_too_long_to_simulate_is_refused(
    logged: tuple[RunningVault, dict[str, str]],
) -> None:
    """Casbin parses a draft's matcher on every decision of the matrix: a matcher padded
    with thousands of terms (well under the file limit) is refused up front, not run."""
    vault, _ = logged
    model = (POLICY / "vault_model.conf").read_text(encoding="utf-8")
    matcher = next(line for line in model.splitlines() if line.startswith("m = "))
    padded = model.replace(matcher, matcher + ' && r.sub != "zz"' * 9000)
    assert len(padded.encode()) < 256 * 1024
    with pytest.raises(VaultClientError) as refused:
        _simulate(vault.client(**ADMIN), vault_model__conf=padded)
    assert refused.value.code == "INVALID_ARGUMENT"
    assert any("too long" in d and "vault_model.conf" in d for _, d in refused.value.violations)
    # The shipped matcher with a few more conditions is still a valid model.
    parse_model(model.replace(matcher, matcher + ' && r.sub != "zz"' * 20))


def test_a_draft_whose_matrix_would_explode_is_refused_before_any_work(
    logged: tuple[RunningVault, dict[str, str]],
) -> None:
    """Every matrix cell is decided per department and clearance level a line names:
    600 one-line departments (about 25 KiB) would ask some 77 million decisions."""
    vault, _ = logged
    lines = "".join(f"p, *, *, *, *, *, 0, dept{i}, deny\n" for i in range(600))
    lines += "".join(f"p, analyst, *, subjects:read, *, *, {n}, *, allow\n" for n in range(1, 10))
    with pytest.raises(VaultClientError) as refused:
        _simulate(vault.client(**ADMIN), vault_policy__csv=_csv() + lines)
    assert refused.value.code == "INVALID_ARGUMENT"
    assert any("decision matrix" in d for f, d in refused.value.violations if f == "draft_files")
    before = matrix_decisions(*(PolicyEngine.from_texts(_files()),) * 2)
    assert before <= MAX_MATRIX_DECISIONS  # the shipped policy is simulated as before


def test_explain_agrees_with_every_recorded_decision_and_sees_a_later_withdrawal(
    logged: tuple[RunningVault, dict[str, str]],
) -> None:
    vault, subjects = logged
    engine = vault.app.db.engine
    officer = vault.client(**DPO)
    indexes = [e.leaf_index for e in audit.iter_query(engine) if e.leaf_index is not None]
    explained = {}
    for index in indexes:
        reply = officer.call(
            officer.audit, "ExplainEntry", audit_pb2.ExplainEntryRequest(index=index)
        )
        explained[index] = reply
        if reply.policy_action:
            assert reply.agrees, (index, reply.entry.action, reply.entry.reason, reply.then)
    read = next(
        r for r in explained.values()
        if r.entry.action == "GetSubject" and "marketing" in r.entry.roles
        and list(r.entry.subject_ids) == [subjects["ada"]]
    )  # fmt: skip
    assert read.verdict == "allowed then, allowed now"
    assert read.consent_event.purpose == "marketing" and read.consent_event.action == "grant"
    withdraw(vault.client(), subjects["ada"], "marketing")
    later = officer.call(
        officer.audit, "ExplainEntry", audit_pb2.ExplainEntryRequest(index=read.entry.index)
    )
    assert later.agrees
    assert later.verdict == "allowed then, would be withheld now" and not later.same_now
    assert read.same_now
    assert later.now.subject_rule == "opt-out:marketing"  # a withdrawal opts out
    assert later.consent_event.action == "grant"  # what the read relied on then
    assert later.then.rule == later.now.rule  # the same policy line still allows it
    withheld = next(
        r for r in explained.values()
        if r.entry.action == "GetSubject" and "marketing" in r.entry.roles
        and list(r.entry.subject_ids) == [subjects["grace"]]
    )  # fmt: skip
    assert withheld.verdict == "withheld then, withheld now"
    denied = next(r for r in explained.values() if r.entry.decision == "deny")
    assert denied.then.rule == "default-deny" and denied.verdict == "denied then, denied now"


def test_every_served_version_is_kept(logged: tuple[RunningVault, dict[str, str]]) -> None:
    vault, _ = logged
    admin = vault.client(**ADMIN)
    reply = admin.call(admin.admin, "ListPolicyVersions", admin_pb2.ListPolicyVersionsRequest())
    (version,) = reply.policy_versions
    assert version.in_force and version.version == vault.app.policy.version
    kept = vault.app.versions.get(version.version)
    assert kept is not None and kept.files == dict(vault.app.policy.texts)


def _cli(vault: RunningVault, who: dict[str, object], *args: str) -> Result:
    runner = CliRunner(env={"COLUMNS": "200", "CUSTOMER_VAULT_TOKEN": vault.token(**who)})
    return runner.invoke(app, [*args, "--address", vault.address])


def test_the_cli_simulates_a_draft_folder_and_explains_an_entry(
    logged: tuple[RunningVault, dict[str, str]], tmp_path: Path
) -> None:
    vault, _ = logged
    (tmp_path / "vault_policy.csv").write_text(_csv() + "g, analyst, support_agent, *\n")
    gated = _cli(vault, ADMIN, "policy", "simulate", "--draft", str(tmp_path),
                 "--fail-on", "widen-restricted,narrow-any", "--format", "json")  # fmt: skip
    assert gated.exit_code == 3, gated.output
    report = json.loads(gated.stdout)
    assert report["failedChecks"] == ["widen-restricted"]
    assert {g["roles"] for g in report["groups"]} == {"analyst"}
    table = _cli(vault, ADMIN, "policy", "simulate", "--draft", str(tmp_path), "--since", "1d")
    assert table.exit_code == 0, table.output
    assert "Recorded decisions" in table.stdout and "Decision matrix" in table.stdout
    index = next(e.leaf_index for e in audit.iter_query(vault.app.db.engine, action="GetSubject"))
    explained = _cli(vault, DPO, "audit", "explain", str(index))
    assert explained.exit_code == 0, explained.output
    assert "agrees with the record: yes" in explained.stdout
    assert "verdict: allowed then" in explained.stdout


def test_the_offline_gate_compares_two_folders_without_a_vault(tmp_path: Path) -> None:
    (tmp_path / "vault_policy.csv").write_text(
        _csv().replace("p, *, *, fields:*, class:restricted, analytics, 0, *, deny\n", "")
    )
    result = CliRunner().invoke(
        app,
        ["policy", "simulate", "--base", str(POLICY), "--draft", str(tmp_path),
         "--fail-on", "widen-restricted", "--format", "json"],
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    assert "widen-restricted" in result.stderr
    cells = json.loads(result.stdout)["matrixChanges"]
    assert {(c["role"], c["resource"], c["after"]) for c in cells} == {
        ("analyst", "class:restricted", "allow")
    }
    same = CliRunner().invoke(
        app, ["policy", "simulate", "--base", str(POLICY), "--draft", str(POLICY),
              "--fail-on", "any-change"],
    )  # fmt: skip
    assert same.exit_code == 0, same.output
    assert "no matrix cell changes" in same.stdout


def test_on_both_databases_a_change_is_simulated_and_a_withdrawal_explained(
    vault: RunningVault,
) -> None:
    service = vault.client()
    ada = service.create(ADA).subject_id
    grant(service, ada, "marketing")
    vault.client(**AGENT).get(ada, "support", "support")
    vault.client(**MARKETER).get(ada, "marketing", "marketing")
    withdraw(service, ada, "marketing")
    _integrated(vault)
    draft = _csv().replace(AGENT_CONFIDENTIAL, AGENT_CONFIDENTIAL.replace(", 2, ", ", 3, "))
    reply = _simulate(vault.client(**ADMIN), vault_policy__csv=draft)
    assert _groups(reply) == {
        ("CHANGE_KIND_NARROWED", "support_agent", "subjects:read", "support", "confidential"): 1
    }
    read = next(
        e for e in audit.iter_query(vault.app.db.engine, action="GetSubject")
        if "marketing" in e.entry.actor_roles
    )  # fmt: skip
    officer = vault.client(**DPO)
    explained = officer.call(
        officer.audit, "ExplainEntry", audit_pb2.ExplainEntryRequest(index=read.leaf_index)
    )
    assert explained.agrees and explained.verdict == "allowed then, would be withheld now"
