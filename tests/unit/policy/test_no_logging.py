"""Casbin logs every request with its values; the engine must never let it."""

from __future__ import annotations

import logging
import logging.config

import casbin
import pytest

from tests.data import FIELDS
from tests.unit.policy.helpers import POLICIES, who
from vault.errors import PermissionDeniedError
from vault.policy import Action, PolicyEngine, SubjectContext
from vault.policy.sources import MODEL_FILE

# Values that only a request carries: none of them may appear in any log record.
TENANT = "tenant-sentinel-7c1e"
DEPARTMENT = "dept-sentinel-91ab"
ROLE = "role_sentinel_x4"
CASBIN_LOGGERS = ("casbin", "casbin.enforcer", "casbin.role", "casbin.policy")


def _reenable_casbin_logging() -> None:
    """What an application's later logging set-up does: every existing logger is live."""
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
    for name in CASBIN_LOGGERS:
        logging.getLogger(name).disabled = False
        logging.getLogger(name).setLevel(logging.DEBUG)


def _leaks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if any(v in record.getMessage() + repr(record.args) for v in (TENANT, DEPARTMENT, ROLE))
    ]


def test_plain_casbin_would_log_request_values(caplog: pytest.LogCaptureFixture) -> None:
    # The control: without the engine's silencing, this capture sees the values.
    model = casbin.Enforcer.new_model(text=(POLICIES / MODEL_FILE).read_text(encoding="utf-8"))
    enforcer = casbin.Enforcer(model)
    _reenable_casbin_logging()
    with caplog.at_level(logging.DEBUG):
        enforcer.enforce(ROLE, TENANT, "audit:read", "*", "", 0, DEPARTMENT)
    assert _leaks(caplog)


def test_the_engine_logs_no_request_values(caplog: pytest.LogCaptureFixture) -> None:
    engine = PolicyEngine.from_dir(POLICIES)
    _reenable_casbin_logging()
    caller = who("support_agent", ROLE, tenant=TENANT, department=DEPARTMENT, clearance="2")
    with caplog.at_level(logging.DEBUG):
        engine.decide(caller, Action.SUBJECT_READ, purpose="support", resource="view:support")
        engine.decide(caller, Action.KEYS_ADMIN)
        with pytest.raises(PermissionDeniedError):
            engine.authorize(
                caller, Action.FIELD_CLEAR, purpose="marketing", resource="class:restricted"
            )
        engine.plan_view(
            caller, "support", "support", Action.SUBJECT_READ, FIELDS, SubjectContext("active")
        )
    assert _leaks(caplog) == []
    assert not [r for r in caplog.records if r.name.startswith("casbin")]
