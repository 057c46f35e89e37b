"""A customer's access history in plain language: which team, did what, why, when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import audit


def N_(text: str) -> str:  # noqa: N802 - the gettext marker name
    return text


TEAMS = (
    ("customer", N_("You")),
    ("dpo", N_("Our data protection officer")),
    ("compliance_officer", N_("Our compliance team")),
    ("support_lead", N_("Our customer support")),
    ("support_agent", N_("Our customer support")),
    ("fraud_analyst", N_("Our fraud prevention team")),
    ("marketing", N_("Our marketing team")),
    ("analyst", N_("Our statistics team")),
    ("service", N_("Our systems")),
    ("system", N_("Our systems")),
    ("frontend", N_("Our website")),
    ("notifier", N_("Our systems")),
)
OWN_LOOKS = {
    "GetSubject",
    "GetConsent",
    "SubjectHistory",
    "GetConsentReceipt",
    "ListConsentEvents",
    "GetDormancyNotice",
    "ExportSubjectData",
    "ListOwnDataSubjectRequests",
}
"""What the customer's own pages call on every visit: not news to them."""
READS = {"GetSubject", "FindSubjects", "ExportView", "RevealField", "Detokenize"}
DEEDS = {
    "GetSubject": N_("looked at your data"),
    "FindSubjects": N_("looked you up"),
    "ExportView": N_("included you in an export"),
    "RevealField": N_("looked at a protected detail"),
    "Detokenize": N_("looked at a protected detail"),
    "CreateSubject": N_("created your record"),
    "BatchCreateSubjects": N_("created your record"),
    "UpdateSubject": N_("updated your data"),
    "RectifySubjectData": N_("corrected your data"),
    "RecordActivity": N_("recorded activity on your account"),
    "GrantConsent": N_("recorded your consent"),
    "WithdrawConsent": N_("recorded your withdrawal of consent"),
    "OptOut": N_("recorded your opt-out"),
    "GetConsent": N_("checked your choices"),
    "ExportSubjectData": N_("prepared a copy of your data"),
    "RestrictProcessing": N_("restricted the use of your data"),
    "LiftRestriction": N_("lifted the restriction on your data"),
    "EraseSubjectData": N_("erased your data"),
    "EraseSubject": N_("erased your data"),
    "IssueCustomerToken": N_("opened your privacy center for you"),
    "CreateCustomerLink": N_("sent you a link to your privacy center"),
    "RedeemCustomerLink": N_("opened your privacy center"),
    "GetDormancyNotice": N_("checked whether your account is due to be anonymized"),
    "NotifySubject": N_("noticed your account has not been used for a long time"),
    "CancelNotice": N_("cancelled the anonymization of your account"),
    "AnonymizeSubject": N_("anonymized your account"),
    "SetLegalHold": N_("placed your data on legal hold"),
    "ClearLegalHold": N_("lifted the legal hold on your data"),
    "CreateDataSubjectRequest": N_("received your request"),
    "IssueRequestVerificationCode": N_("sent you a code to confirm your request"),
    "VerifyDataSubjectRequest": N_("received your confirmation of your request"),
    "CancelDataSubjectRequest": N_("recorded that you withdrew your request"),
    "ListDataSubjectRequests": N_("reviewed the requests waiting for an answer"),
    "GetDataSubjectRequest": N_("looked at your request"),
    "DecideDataSubjectRequest": N_("decided on your request"),
    "ExpireDataSubjectRequest": N_("closed your request: it was not confirmed in time"),
}
WHY = {
    "support": N_("to answer your support request"),
    "marketing": N_("for marketing"),
    "personalization": N_("to personalize our product"),
    "sharing": N_("to share with partners"),
    "analytics": N_("for statistics"),
    "fraud": N_("to prevent fraud"),
    "legal": N_("for a legal obligation"),
    "data_subject_request": N_("for your own request about your data"),
}


@dataclass(frozen=True)
class Happening:
    when: datetime
    team: str
    deed: str
    why: str
    refused: bool
    fields: tuple[str, ...]


def team_of(roles: tuple[str, ...]) -> str:
    if not roles:  # the vault's own jobs (retention) act with no role
        return N_("Our systems")
    for role, team in TEAMS:
        if role in roles:
            return team
    return N_("Someone at our company")


def plain(entries: list[audit.AuditEntry]) -> list[Happening]:
    """Each entry as a sentence's parts (untranslated: the page translates them)."""
    shown = []
    for entry in entries:
        if entry.result_code == "UNAUTHENTICATED":
            continue  # a refused link, not someone touching the data
        if "customer" in entry.actor_roles and entry.action in OWN_LOOKS:
            continue
        shown.append(
            Happening(
                when=entry.time,
                team=team_of(entry.actor_roles),
                deed=DEEDS.get(entry.action, N_("used your record")),
                why=WHY.get(entry.purpose, ""),
                refused=entry.decision == "deny" or entry.result_code != "OK",
                fields=entry.field_names if entry.action in READS else (),
            )
        )
    return shown


def plain_package_history(entries: list[dict[str, object]]) -> list[Happening]:
    """The access history of a downloaded package, as the page shows it."""
    shown = []
    for item in entries:
        roles = item.get("actor_roles")
        fields = item.get("fields")
        action = str(item.get("action", ""))
        if item.get("result") == "UNAUTHENTICATED":
            continue
        shown.append(
            Happening(
                when=datetime.fromisoformat(str(item.get("time"))),
                team=team_of(tuple(str(r) for r in roles) if isinstance(roles, list) else ()),
                deed=DEEDS.get(action, N_("used your record")),
                why=WHY.get(str(item.get("purpose", "")), ""),
                refused=item.get("decision") == "deny" or item.get("result") != "OK",
                fields=tuple(str(f) for f in fields)
                if isinstance(fields, list) and action in READS
                else (),
            )
        )
    return shown
