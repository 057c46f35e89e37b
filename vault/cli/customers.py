"""`customer-vault customers ...`: a customer's own access to the vault (CustomerAccessService):
tokens and one-time links for the privacy center, and the dormancy notice they see."""

from __future__ import annotations

from typing import Annotated

import typer

from vault.cli.output import Format, FormatOpt, Output, print_message
from vault.cli.remote import DEFAULT_ADDRESS, Address, Token, call
from vault.cli.requests import own_requests_app

customers_app = typer.Typer(
    no_args_is_help=True, help="Customers' own access: tokens, sign-in links, dormancy notices."
)

Ttl = Annotated[int, typer.Option(help="Lifetime in seconds (0: the vault's default).")]


@customers_app.command("issue-token")
def issue_token(
    subject_id: str,
    ttl: Ttl = 0,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """A token bound to the customer, for their own requests (privacy center)."""
    response = call(
        address, token, "customers", "IssueCustomerToken", subjectId=subject_id, ttlSeconds=ttl
    )
    print_message(response, fmt, output)


@customers_app.command("create-link")
def create_link(
    subject_id: str,
    ttl: Ttl = 0,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """A one-time sign-in code for the customer (send it through your own channel)."""
    response = call(
        address, token, "customers", "CreateCustomerLink", subjectId=subject_id, ttlSeconds=ttl
    )
    print_message(response, fmt, output)


@customers_app.command("redeem-link")
def redeem_link(
    code: Annotated[str, typer.Argument(help="The one-time code (it is the credential).")],
    address: Address = DEFAULT_ADDRESS,
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Exchange a one-time code for a customer token (no bearer token needed)."""
    response = call(address, "", "customers", "RedeemCustomerLink", anonymous=True, code=code)
    print_message(response, fmt, output)


@customers_app.command("dormancy-notice")
def dormancy_notice(
    subject_id: str,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Whether the customer has an open dormancy notice, and its deadline."""
    response = call(address, token, "customers", "GetDormancyNotice", subjectId=subject_id)
    print_message(response, fmt, output)


customers_app.add_typer(own_requests_app, name="request")
