"""clients/python is slim: it depends on grpcio, protobuf and googleapis-common-protos
only, imports nothing else, and its retry policy and request ids follow the descriptors."""

from __future__ import annotations

import ast
import json
import sys
import tomllib
import uuid
from pathlib import Path

from customer_vault_client import channel, retries, services
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "python"
ALLOWED = {"grpc", "google"}


def test_the_distribution_depends_on_grpcio_protobuf_and_google_rpc_only() -> None:
    project = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]
    names = {d.split(">")[0].split("=")[0].split("<")[0].strip() for d in project["dependencies"]}
    assert names == {"grpcio", "protobuf", "googleapis-common-protos"}


def test_the_package_imports_only_the_standard_library_grpc_and_protobuf() -> None:
    imported = set()
    for path in (CLIENT / "src" / "customer_vault_client").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"customer_vault_client"}
    assert third_party <= ALLOWED, third_party


def _keyed_service() -> descriptor_pb2.FileDescriptorProto:
    """A service of a private pool whose request has a request_id (AIP-155)."""
    file = descriptor_pb2.FileDescriptorProto(name="keyed.proto", package="keyed", syntax="proto3")
    request = file.message_type.add(name="MakeRequest")
    request.field.add(
        name="request_id",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )
    file.message_type.add(name="MakeResponse")
    service = file.service.add(name="KeyedService")
    service.method.add(
        name="Make", input_type=".keyed.MakeRequest", output_type=".keyed.MakeResponse"
    )
    return file


def test_an_empty_request_id_is_filled_with_a_uuid4_and_a_given_one_kept() -> None:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_keyed_service())
    make = message_factory.GetMessageClass(pool.FindMessageTypeByName("keyed.MakeRequest"))
    request = make()
    channel.fill_request_id(request)
    assert uuid.UUID(request.request_id).version == 4
    kept = make(request_id="mine")
    channel.fill_request_id(kept)
    assert kept.request_id == "mine"
    other = services.SERVICES["vault"][0].GetSubjectRequest()
    channel.fill_request_id(other)  # no such field: untouched
    assert other == services.SERVICES["vault"][0].GetSubjectRequest()


def test_the_retry_policy_names_reads_and_keyed_calls_only() -> None:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_keyed_service())
    keyed = pool.FindServiceByName("keyed.KeyedService")
    names = set(retries.retryable_methods([*services.all_descriptors(), keyed]))
    assert ("keyed.KeyedService", "Make") in names
    vault = "customervault.v1.VaultService"
    assert {(vault, "GetSubject"), (vault, "FindSubjects"), (vault, "ExportView")} <= names
    for method in ("RevealField", "Tokenize", "Detokenize"):  # audited disclosures
        assert ((vault, method) in names) == retries.has_request_id(
            services.descriptor("vault").methods_by_name[method]
        )
    assert ("customervault.v1.CustomerAccessService", "RedeemCustomerLink") not in names
    config = json.loads(retries.service_config([keyed], retries.DEFAULT_RETRY))
    [method_config] = config["methodConfig"]
    assert method_config["name"] == [{"service": "keyed.KeyedService", "method": "Make"}]
    assert method_config["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
