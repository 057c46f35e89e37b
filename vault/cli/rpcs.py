"""The command that calls each RPC of the vault: every RPC has one
(tests/unit/test_cli_covers_every_rpc.py enumerates the services' descriptors and
checks each row names a command that exists).

Adding an RPC: add its command to a group, and a row here (`"Service.Method": "group
command"`). A row names the command that makes the call; `--format json` prints the
whole response.
"""

from __future__ import annotations

from collections.abc import Mapping

RPC_COMMANDS: Mapping[str, str] = {
    # VaultService
    "VaultService.CreateSubject": "subjects create",
    "VaultService.BatchCreateSubjects": "subjects batch-create",
    "VaultService.GetSubject": "subjects get",
    "VaultService.UpdateSubject": "subjects update",
    "VaultService.FindSubjects": "subjects find",
    "VaultService.EraseSubject": "subjects erase",
    "VaultService.RecordActivity": "subjects activity",
    "VaultService.ExportView": "subjects export",
    "VaultService.RevealField": "subjects reveal",
    "VaultService.Tokenize": "subjects tokenize",
    "VaultService.Detokenize": "subjects detokenize",
    # ConsentService
    "ConsentService.GrantConsent": "consent grant",
    "ConsentService.WithdrawConsent": "consent withdraw",
    "ConsentService.OptOut": "consent opt-out",
    "ConsentService.GetConsent": "consent status",
    "ConsentService.ListConsentEvents": "consent history",
    "ConsentService.GetConsentReceipt": "consent receipt",
    # RightsService
    "RightsService.ExportSubjectData": "rights access",
    "RightsService.RectifySubjectData": "rights rectify",
    "RightsService.RestrictProcessing": "rights restrict",
    "RightsService.LiftRestriction": "rights lift-restriction",
    "RightsService.EraseSubjectData": "rights erase",
    "RightsService.ListDataSubjectRequests": "rights requests list",
    "RightsService.GetDataSubjectRequest": "rights requests show",
    "RightsService.DecideDataSubjectRequest": "rights requests decide",
    # CustomerAccessService
    "CustomerAccessService.IssueCustomerToken": "customers issue-token",
    "CustomerAccessService.CreateCustomerLink": "customers create-link",
    "CustomerAccessService.RedeemCustomerLink": "customers redeem-link",
    "CustomerAccessService.GetDormancyNotice": "customers dormancy-notice",
    "CustomerAccessService.CreateDataSubjectRequest": "customers request create",
    "CustomerAccessService.IssueRequestVerificationCode": "customers request issue-code",
    "CustomerAccessService.VerifyDataSubjectRequest": "customers request verify",
    "CustomerAccessService.ListOwnDataSubjectRequests": "customers request list",
    "CustomerAccessService.CancelDataSubjectRequest": "customers request cancel",
    # RetentionService
    "RetentionService.ListNotices": "retention notices",
    "RetentionService.AcknowledgeNotice": "retention acknowledge",
    "RetentionService.SetLegalHold": "retention hold",
    "RetentionService.ClearLegalHold": "retention release",
    "RetentionService.ListLegalHolds": "retention holds",
    "RetentionService.GetRetentionReport": "retention report",
    "RetentionService.ListRetentionRuns": "retention runs",
    # PolicyAdminService
    "PolicyAdminService.ReloadPolicy": "policy reload",
    "PolicyAdminService.GetPolicyStatus": "policy status",
    "PolicyAdminService.CheckPolicy": "policy ask",
    "PolicyAdminService.SimulatePolicy": "policy simulate",
    "PolicyAdminService.ListPolicyVersions": "policy versions",
    # EventService
    "EventService.ListEvents": "events list",
    # AuditService
    "AuditService.QueryEntries": "audit query",
    "AuditService.GetEntry": "audit entry",
    "AuditService.ExplainEntry": "audit explain",
    "AuditService.SubjectHistory": "audit history",
    "AuditService.GetLatestCheckpoint": "audit checkpoint",
    "AuditService.GetInclusionProof": "audit inclusion-proof",
    "AuditService.GetConsistencyProof": "audit consistency-proof",
    "AuditService.VerifyLog": "audit verify-log",
    "AuditService.VerifyLogWithProgress": "audit verify-log --progress",
}
