"""Mutual TLS: the principal comes from a verified client certificate, mapped by
`policies/identities.yaml`; forged and mismatched credentials are UNAUTHENTICATED."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from customer_vault_client.gen.customervault.v1 import vault_pb2 as pb
from customer_vault_client.gen.customervault.v1 import vault_pb2_grpc
from typer.testing import CliRunner

import audit
from tests.data import ADA
from tests.integration.harness import RunningVault, raw_stub, running_vault, settings_for
from vault.cli.main import app
from vault.crypto import certificate_thumbprint
from vault.principal import Principal

ORDER_SERVICE = "spiffe://acme.example/ns/shop/sa/order-service"


@dataclass(frozen=True)
class Issued:
    key: bytes
    cert: bytes


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class Authority:
    """A throwaway certificate authority."""

    def __init__(self, name: str) -> None:
        self.key = _key()
        now = dt.datetime.now(dt.UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, common_name: str, sans: list[x509.GeneralName]) -> Issued:
        key = _key()
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return Issued(_pem_key(key), cert.public_bytes(serialization.Encoding.PEM))


@dataclass
class TlsVault:
    vault: RunningVault
    ca: Authority

    def stub(self, client: Issued | None) -> tuple[vault_pb2_grpc.VaultServiceStub, grpc.Channel]:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=self.ca.pem,
            private_key=client.key if client else None,
            certificate_chain=client.cert if client else None,
        )
        channel = grpc.secure_channel(
            f"localhost:{self.vault.server.port}",
            credentials,
        )
        return vault_pb2_grpc.VaultServiceStub(channel), channel


@pytest.fixture
def tls_vault(tmp_path: Path) -> Iterator[TlsVault]:
    ca = Authority("Customer Vault test CA")
    server = ca.issue("localhost", [x509.DNSName("localhost")])
    files = {}
    for name, data in {
        "ca.pem": ca.pem,
        "server.pem": server.cert,
        "server.key": server.key,
    }.items():
        files[name] = tmp_path / name
        files[name].write_bytes(data)
    settings = settings_for(
        tmp_path / "data",
        None,
        tls_cert=files["server.pem"],
        tls_key=files["server.key"],
        tls_client_ca=files["ca.pem"],
    )
    with running_vault(settings) as running:
        yield TlsVault(running, ca)


def _create(
    stub: vault_pb2_grpc.VaultServiceStub, metadata: tuple[tuple[str, str], ...] = ()
) -> pb.CreateSubjectResponse:
    return stub.CreateSubject(pb.CreateSubjectRequest(fields=ADA), metadata=metadata, timeout=10)


def test_a_mapped_client_certificate_is_the_principal(tls_vault: TlsVault) -> None:
    client = tls_vault.ca.issue("order-service", [x509.UniformResourceIdentifier(ORDER_SERVICE)])
    stub, channel = tls_vault.stub(client)
    token = tls_vault.vault.token(principal="order-service", tenant="acme")
    with channel:
        assert _create(stub).subject.tenant == "acme"
        # The same principal's token beside the certificate is accepted.
        assert _create(stub, (("authorization", f"Bearer {token}"),)).subject.tenant == "acme"


def _refused(
    tls_vault: TlsVault, client: Issued | None, metadata: tuple[tuple[str, str], ...] = ()
) -> grpc.StatusCode:
    stub, channel = tls_vault.stub(client)
    with channel, pytest.raises(grpc.RpcError) as caught:
        _create(stub, metadata)
    return caught.value.code()


def test_a_certificate_the_map_does_not_know_is_unauthenticated(tls_vault: TlsVault) -> None:
    stranger = tls_vault.ca.issue("stranger", [x509.UniformResourceIdentifier("spiffe://x/y")])
    assert _refused(tls_vault, stranger) is grpc.StatusCode.UNAUTHENTICATED


# --- identity confusion: only the certificate's one URI SAN names a client --------------


CONFUSIONS = {
    # The mapped SPIFFE id spelt where a CA may let a client put any text.
    "common name": ("spiffe://acme.example/ns/shop/sa/order-service", []),
    "DNS SAN": ("order-service", [x509.DNSName(ORDER_SERVICE)]),
    "e-mail SAN": ("order-service", [x509.RFC822Name(ORDER_SERVICE)]),
    "DNS SAN beside an unmapped URI": (
        "order-service",
        [
            x509.UniformResourceIdentifier("spiffe://acme.example/ns/x/sa/y"),
            x509.DNSName(ORDER_SERVICE),
        ],
    ),
    # Two URI SANs: a SPIFFE SVID carries one, so a second cannot pick the identity.
    "two URI SANs": (
        "order-service",
        [
            x509.UniformResourceIdentifier("spiffe://acme.example/ns/x/sa/y"),
            x509.UniformResourceIdentifier(ORDER_SERVICE),
        ],
    ),
}


@pytest.mark.parametrize("case", sorted(CONFUSIONS))
def test_a_mapped_id_spelt_anywhere_but_the_one_uri_san_is_not_that_identity(
    tls_vault: TlsVault, case: str
) -> None:
    common_name, sans = CONFUSIONS[case]
    impostor = tls_vault.ca.issue(common_name, sans)
    assert _refused(tls_vault, impostor) is grpc.StatusCode.UNAUTHENTICATED
    assert _refusal_reasons(tls_vault.vault) == ["unknown client certificate"]


def test_a_token_whose_tenant_differs_from_the_certificate_is_unauthenticated(
    tls_vault: TlsVault,
) -> None:
    client = tls_vault.ca.issue("order-service", [x509.UniformResourceIdentifier(ORDER_SERVICE)])
    token = tls_vault.vault.token(principal="order-service", tenant="globex")
    code = _refused(tls_vault, client, (("authorization", f"Bearer {token}"),))
    assert code is grpc.StatusCode.UNAUTHENTICATED


def test_a_certificate_from_another_ca_never_gets_through(tls_vault: TlsVault) -> None:
    rogue = Authority("rogue CA").issue(
        "order-service", [x509.UniformResourceIdentifier(ORDER_SERVICE)]
    )
    # The TLS handshake fails before any RPC: the channel never becomes ready.
    assert _refused(tls_vault, rogue) is grpc.StatusCode.UNAVAILABLE


def test_no_client_certificate_is_refused_by_the_handshake(tls_vault: TlsVault) -> None:
    assert _refused(tls_vault, None) is grpc.StatusCode.UNAVAILABLE


# --- tokens bound to a client certificate (RFC 8705): a replayed copy is refused -----------


def _bound_token(vault: RunningVault, certificate_pem: bytes) -> str:
    who = Principal("order-service", "acme", frozenset({"service"}), MappingProxyType({}))
    return vault.issuer.issue(
        who, dt.timedelta(minutes=10), bound_to=certificate_thumbprint(certificate_pem)
    )


def _refusal_reasons(vault: RunningVault) -> list[str]:
    return [
        logged.entry.reason
        for logged in audit.iter_query(vault.app.db.engine)
        if logged.entry.result_code == "UNAUTHENTICATED"
    ]


def test_a_bound_token_is_accepted_only_with_its_own_certificate(tls_vault: TlsVault) -> None:
    """Two replicas of one service, each with its own key and certificate, both mapped
    to order-service: a token bound to one replica's certificate, replayed by the other
    (a stolen copy, say), is refused and audited, though every other check passes."""
    replica_a = tls_vault.ca.issue("order-service", [x509.UniformResourceIdentifier(ORDER_SERVICE)])
    replica_b = tls_vault.ca.issue("order-service", [x509.UniformResourceIdentifier(ORDER_SERVICE)])
    token = _bound_token(tls_vault.vault, replica_a.cert)
    metadata = (("authorization", f"Bearer {token}"),)
    stub, channel = tls_vault.stub(replica_a)
    with channel:
        assert _create(stub, metadata).subject.tenant == "acme"
        assert _create(stub, metadata).subject.tenant == "acme"  # and again, from the cache
    assert _refused(tls_vault, replica_b, metadata) is grpc.StatusCode.UNAUTHENTICATED
    assert _refusal_reasons(tls_vault.vault) == ["token bound to another client certificate"]


def test_a_bound_token_replayed_without_mutual_tls_is_refused_and_audited(
    sqlite_vault: RunningVault,
) -> None:
    ca = Authority("Customer Vault test CA")
    owner = ca.issue("order-service", [x509.UniformResourceIdentifier(ORDER_SERVICE)])
    token = _bound_token(sqlite_vault, owner.cert)
    stub, channel = raw_stub(sqlite_vault)
    with channel, pytest.raises(grpc.RpcError) as caught:
        _create(stub, (("authorization", f"Bearer {token}"),))
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert caught.value.details() == "invalid credentials"  # no hint which check failed
    assert _refusal_reasons(sqlite_vault) == ["token bound to another client certificate"]


def test_token_issue_binds_to_a_certificate_file(tls_vault: TlsVault, tmp_path: Path) -> None:
    replica = tls_vault.ca.issue("order-service", [x509.UniformResourceIdentifier(ORDER_SERVICE)])
    other = tls_vault.ca.issue("order-service", [x509.UniformResourceIdentifier(ORDER_SERVICE)])
    (tmp_path / "replica.pem").write_bytes(replica.cert)
    (tmp_path / "junk.pem").write_text("not a certificate")
    data = ["--data-dir", str(tls_vault.vault.settings.data_dir)]
    base = [
        "token",
        "issue",
        "--principal",
        "order-service",
        "--tenant",
        "acme",
        "--role",
        "service",
    ]
    runner = CliRunner()
    issued = runner.invoke(app, [*base, "--bind-cert", str(tmp_path / "replica.pem"), *data])
    assert issued.exit_code == 0, issued.output
    metadata = (("authorization", f"Bearer {issued.stdout.strip()}"),)
    stub, channel = tls_vault.stub(replica)
    with channel:
        assert _create(stub, metadata).subject.tenant == "acme"
    assert _refused(tls_vault, other, metadata) is grpc.StatusCode.UNAUTHENTICATED
    junk = runner.invoke(app, [*base, "--bind-cert", str(tmp_path / "junk.pem"), *data])
    assert junk.exit_code != 0 and "not a PEM certificate" in junk.output


def test_the_slim_client_and_the_cli_speak_mutual_tls(tls_vault: TlsVault, tmp_path: Path) -> None:
    from customer_vault_client import VaultClient

    client = tls_vault.ca.issue("order-service", [x509.UniformResourceIdentifier(ORDER_SERVICE)])
    files = {"ca.pem": tls_vault.ca.pem, "client.pem": client.cert, "client.key": client.key}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    address = f"localhost:{tls_vault.vault.server.port}"
    with VaultClient(
        address,
        ca_file=tmp_path / "ca.pem",
        client_cert=tmp_path / "client.pem",
        client_key=tmp_path / "client.key",
    ) as vault:
        assert vault.create(ADA).tenant == "acme"  # the certificate is the principal
    env = {
        "CUSTOMER_VAULT_ADDR": address,
        "CUSTOMER_VAULT_TOKEN": tls_vault.vault.token(principal="order-service"),
        "CUSTOMER_VAULT_CA_FILE": str(tmp_path / "ca.pem"),
        "CUSTOMER_VAULT_CLIENT_CERT": str(tmp_path / "client.pem"),
        "CUSTOMER_VAULT_CLIENT_KEY": str(tmp_path / "client.key"),
    }
    fields = [f"--field={name}={value}" for name, value in ADA.items()]
    created = CliRunner(env=env).invoke(app, ["subjects", "create", *fields])
    assert created.exit_code == 0, created.output
    assert "version 1 active" in created.stdout
