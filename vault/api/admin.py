"""PolicyAdminService: reload the policy without a restart, see which one is in force,
and ask what it decides (`policy:admin`); what a draft would change and the kept
versions (`policy:simulate`)."""

from __future__ import annotations

from types import MappingProxyType

import grpc
from customer_vault_client.gen.customervault.v1 import admin_pb2 as pb
from customer_vault_client.gen.customervault.v1 import admin_pb2_grpc

from vault.access.guard import authorize
from vault.api.convert import when
from vault.api.whatif_messages import simulation_message, versions_message
from vault.context import require_call
from vault.errors import FailedPreconditionError, FieldViolation, InvalidArgumentError
from vault.fields.dictionary import DataDictionary
from vault.policy import Action, PolicyEngine
from vault.principal import Principal
from vault.whatif.service import WhatIfService


def resolve_resource(resource: str, dictionary: DataDictionary) -> str:
    """`*`, `class:<c>` and `view:<v>` as given; a field name becomes its class."""
    if resource in ("", "*") or resource.startswith(("class:", "view:")):
        return resource or "*"
    spec = dictionary.fields.get(resource)
    if spec is None:
        raise InvalidArgumentError([FieldViolation("resource", "unknown field or resource")])
    return f"class:{spec.sensitivity}"


class PolicyAdminServicer(admin_pb2_grpc.PolicyAdminServiceServicer):
    """The gRPC face of the policy engine's administration."""

    def __init__(
        self, policy: PolicyEngine, dictionary: DataDictionary, whatif: WhatIfService
    ) -> None:
        self._policy = policy
        self._dictionary = dictionary
        self._whatif = whatif

    def _status(self) -> pb.PolicyStatus:
        policy = self._policy
        return pb.PolicyStatus(
            version=policy.version,
            policy_lines=policy.line_count,
            views=sorted(policy.views),
            purposes=sorted(policy.purposes),
            last_reload_error=str(policy.last_reload_error or ""),
        )

    def ReloadPolicy(
        self, request: pb.ReloadPolicyRequest, context: grpc.ServicerContext
    ) -> pb.ReloadPolicyResponse:
        call = require_call()
        authorize(self._policy, call, Action.POLICY_ADMIN)
        changed = self._policy.reload()
        if self._policy.last_reload_error:
            raise FailedPreconditionError(
                f"policy refused, previous policy still in force: {self._policy.last_reload_error}"
            )
        call.extra = {"changed": str(changed).lower(), "new_policy_version": self._policy.version}
        return pb.ReloadPolicyResponse(changed=changed, status=self._status())

    def GetPolicyStatus(
        self, request: pb.GetPolicyStatusRequest, context: grpc.ServicerContext
    ) -> pb.GetPolicyStatusResponse:
        authorize(self._policy, require_call(), Action.POLICY_ADMIN)
        return pb.GetPolicyStatusResponse(status=self._status())

    def CheckPolicy(
        self, request: pb.CheckPolicyRequest, context: grpc.ServicerContext
    ) -> pb.CheckPolicyResponse:
        call = require_call()
        authorize(self._policy, call, Action.POLICY_ADMIN)
        try:
            action = Action(request.action)
        except ValueError:
            raise InvalidArgumentError([FieldViolation("action", "unknown action")]) from None
        subject = Principal(
            request.principal,
            request.tenant,
            frozenset(request.roles),
            MappingProxyType(dict(request.attributes)),
        )
        decision = self._policy.decide(
            subject,
            action,
            purpose=request.purpose or None,
            resource=resolve_resource(request.resource, self._dictionary),
        )
        call.extra = {"checked_action": action.value, "checked_allowed": str(decision.allowed)}
        return pb.CheckPolicyResponse(
            allowed=decision.allowed,
            rule=decision.rule,
            reason=decision.reason,
            policy_version=self._policy.version,
        )

    def SimulatePolicy(
        self, request: pb.SimulatePolicyRequest, context: grpc.ServicerContext
    ) -> pb.SimulatePolicyResponse:
        files: dict[str, str] = {}
        for item in request.draft_files:
            if item.name in files:
                raise InvalidArgumentError([FieldViolation("draft_files", "a file given twice")])
            files[item.name] = item.content
        result = self._whatif.simulate(
            require_call(),
            draft_files=files,
            draft_version=request.draft_version,
            since=when(request.start_time, request.HasField("start_time"), "start_time"),
            fail_on=list(request.fail_on),
            matrix_only=request.matrix_only,
        )
        return simulation_message(result)

    def ListPolicyVersions(
        self, request: pb.ListPolicyVersionsRequest, context: grpc.ServicerContext
    ) -> pb.ListPolicyVersionsResponse:
        found, in_force, cursor = self._whatif.versions(
            require_call(), request.page_size, request.page_token
        )
        return versions_message(found, in_force, cursor)
