"""The audit action catalogue: every `action` an audit entry of the vault can name.

An entry's action is what was done, as the caller or the job asked for it: the short
name of the RPC for a call (`GetSubject`), or the step of the retention job for its
per-subject entries. The values are what the log stores and what `customer-vault audit
query --action` and `QueryEntries`' `filter.action` match; they never change meaning.
docs/architecture.md ("Audit actions") lists them; a test checks that every method the
server serves is here.
"""

from __future__ import annotations

from enum import StrEnum


class AuditAction(StrEnum):
    """One action of the vault's audit entries (stored as its value)."""

    # VaultService: one entry per call
    CREATE_SUBJECT = "CreateSubject"
    BATCH_CREATE_SUBJECTS = "BatchCreateSubjects"
    GET_SUBJECT = "GetSubject"
    UPDATE_SUBJECT = "UpdateSubject"
    FIND_SUBJECTS = "FindSubjects"
    ERASE_SUBJECT = "EraseSubject"
    RECORD_ACTIVITY = "RecordActivity"
    EXPORT_VIEW = "ExportView"
    REVEAL_FIELD = "RevealField"
    TOKENIZE = "Tokenize"
    DETOKENIZE = "Detokenize"
    # ConsentService: one entry per call
    GRANT_CONSENT = "GrantConsent"
    WITHDRAW_CONSENT = "WithdrawConsent"
    OPT_OUT = "OptOut"
    GET_CONSENT = "GetConsent"
    LIST_CONSENT_EVENTS = "ListConsentEvents"
    GET_CONSENT_RECEIPT = "GetConsentReceipt"
    # RightsService: one entry per call
    EXPORT_SUBJECT_DATA = "ExportSubjectData"
    RECTIFY_SUBJECT_DATA = "RectifySubjectData"
    RESTRICT_PROCESSING = "RestrictProcessing"
    LIFT_RESTRICTION = "LiftRestriction"
    ERASE_SUBJECT_DATA = "EraseSubjectData"
    LIST_DATA_SUBJECT_REQUESTS = "ListDataSubjectRequests"
    GET_DATA_SUBJECT_REQUEST = "GetDataSubjectRequest"
    DECIDE_DATA_SUBJECT_REQUEST = "DecideDataSubjectRequest"
    """The DPO's decision: on approval, the erasure, restriction or rectification and
    the request's new state, in one transaction under this one entry."""
    # RetentionService: one entry per call
    LIST_NOTICES = "ListNotices"
    ACKNOWLEDGE_NOTICE = "AcknowledgeNotice"
    SET_LEGAL_HOLD = "SetLegalHold"
    CLEAR_LEGAL_HOLD = "ClearLegalHold"
    LIST_LEGAL_HOLDS = "ListLegalHolds"
    GET_RETENTION_REPORT = "GetRetentionReport"
    LIST_RETENTION_RUNS = "ListRetentionRuns"
    # CustomerAccessService: one entry per call
    ISSUE_CUSTOMER_TOKEN = "IssueCustomerToken"  # noqa: S105 - an RPC name
    CREATE_CUSTOMER_LINK = "CreateCustomerLink"
    REDEEM_CUSTOMER_LINK = "RedeemCustomerLink"
    GET_DORMANCY_NOTICE = "GetDormancyNotice"
    CREATE_DATA_SUBJECT_REQUEST = "CreateDataSubjectRequest"
    ISSUE_REQUEST_VERIFICATION_CODE = "IssueRequestVerificationCode"
    VERIFY_DATA_SUBJECT_REQUEST = "VerifyDataSubjectRequest"
    LIST_OWN_DATA_SUBJECT_REQUESTS = "ListOwnDataSubjectRequests"
    CANCEL_DATA_SUBJECT_REQUEST = "CancelDataSubjectRequest"
    # EventService: one entry per call
    LIST_EVENTS = "ListEvents"
    # AuditService: one entry per call
    QUERY_ENTRIES = "QueryEntries"
    GET_ENTRY = "GetEntry"
    SUBJECT_HISTORY = "SubjectHistory"
    GET_LATEST_CHECKPOINT = "GetLatestCheckpoint"
    GET_INCLUSION_PROOF = "GetInclusionProof"
    GET_CONSISTENCY_PROOF = "GetConsistencyProof"
    VERIFY_LOG = "VerifyLog"
    VERIFY_LOG_WITH_PROGRESS = "VerifyLogWithProgress"
    EXPLAIN_ENTRY = "ExplainEntry"
    # PolicyAdminService: one entry per call
    RELOAD_POLICY = "ReloadPolicy"
    GET_POLICY_STATUS = "GetPolicyStatus"
    CHECK_POLICY = "CheckPolicy"
    SIMULATE_POLICY = "SimulatePolicy"
    LIST_POLICY_VERSIONS = "ListPolicyVersions"
    # Server reflection, where it needs credentials (`VAULT_REFLECTION` outside the
    # embedded default): one entry per stream
    SERVER_REFLECTION_INFO = "ServerReflectionInfo"
    # The retention job (actor `retention-job`): one entry per subject and step
    NOTIFY_SUBJECT = "NotifySubject"
    """A dormant subject was noticed and moved to pending_anonymization."""
    ANONYMIZE_SUBJECT = "AnonymizeSubject"
    """A due notice's subject was anonymized (crypto-shredded, a pseudonymous record kept)."""
    CANCEL_NOTICE = "CancelNotice"
    """A due notice was cancelled: its subject may no longer be anonymized."""
    # The request workflow's background work (actor `request-expiry`): one entry per request
    EXPIRE_DATA_SUBJECT_REQUEST = "ExpireDataSubjectRequest"
    """A request still awaiting verification passed its deadline and expired."""
    # The CLI (actor `local-operator:uid:N`)
    ISSUE_DEVELOPMENT_TOKEN = "IssueDevelopmentToken"  # noqa: S105 - an action name, not a secret
    """`customer-vault token issue` signed a token with the data dir's own key."""

    @classmethod
    def of_method(cls, method: str) -> AuditAction:
        """The action of a call to the gRPC method `/package.Service/Method`.

        Raises ValueError for a method outside the catalogue: the server serves none.
        """
        return cls(method.rsplit("/", 1)[-1])
