"""`python -m bookstore certs ca | issue`: a development certificate authority and the
certificates it signs (bookstore.pki). Production brings its own CA."""

from __future__ import annotations

from pathlib import Path

import typer

from bookstore.cli.app import app
from bookstore.cli.common import CliError, JsonOption, print_json, reporting_errors

certs = typer.Typer(
    help="A development CA and the server and client certificates it signs.",
    no_args_is_help=True,
)
app.add_typer(certs, name="certs")

EXIT_USAGE = 2
DirOption = typer.Option(..., "--dir", help="where ca.pem and ca.key are, and NAME.pem/.key go")
HostOption = typer.Option([], "--host", help="an address or DNS name clients reach it by (repeat)")


def _report(cert: Path, key: Path, as_json: bool) -> None:
    if as_json:
        print_json({"cert": str(cert), "key": str(key)})
    else:
        typer.echo(cert)


@certs.command("ca")
def certs_ca(
    directory: Path = DirOption,
    days: int = typer.Option(3650, "--days", min=1, max=36500, help="valid for this many days"),
    as_json: bool = JsonOption,
) -> None:
    """Make the CA of DIR (ca.pem, ca.key 0600), unless it has one: a CA already there is kept,
    and every certificate it signed stays valid."""
    from bookstore.pki import ensure_ca

    with reporting_errors():
        try:
            issued = ensure_ca(directory, days)
        except OSError as e:
            raise CliError(f"{directory}: {e.strerror}", EXIT_USAGE) from None
    _report(issued.cert, issued.key, as_json)


@certs.command("issue")
def certs_issue(
    name: str = typer.Argument(..., help="its common name: a server's, or a client's principal"),
    directory: Path = DirOption,
    host: list[str] = HostOption,
    days: int = typer.Option(825, "--days", min=1, max=36500, help="valid for this many days"),
    as_json: bool = JsonOption,
) -> None:
    """Issue (or re-issue) NAME.pem (the certificate, then the CA's) and NAME.key (0600), signed
    by the CA of DIR, valid for every --host (IP addresses also as DNS names, for Erlang)."""
    from bookstore.pki import issue

    with reporting_errors():
        if not (directory / "ca.pem").exists():
            raise CliError(f"no CA in {directory}: run `certs ca --dir {directory}`", EXIT_USAGE)
        try:
            issued = issue(directory, name, host, days)
        except OSError as e:
            raise CliError(f"{directory}: {e.strerror}", EXIT_USAGE) from None
    _report(issued.cert, issued.key, as_json)
