"""What the client subcommands (booth, console, supervise) share: the server's address, the
certificates they trust, and a first look at their token before connecting."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from lapak.cli.errors import CliError
from lapak.cli.exit_codes import EXIT_NO_FILE, EXIT_TOKEN, EXIT_USAGE

TOKEN_ROLES = {
    "console": ("officer",),
    "supervise": ("supervisor", "admin"),
    "booth": ("booth",),
    "recorder": ("recorder",),
}
"""The roles whose token each client subcommand takes (``--token``)."""
COMMAND_FOR_ROLE = {
    "officer": "lapak console",
    "supervisor": "lapak supervise",
    "admin": "lapak supervise",
    "booth": "lapak booth",
    "recorder": "lapak recorder",
}


def server_url(url: str) -> str:
    """Accept ``ws://host:port`` or ``host:port``; the websocket lives at ``/ws``."""
    if "://" not in url:
        url = f"ws://{url}"
    parts = urlsplit(url)
    path = parts.path if parts.path not in ("", "/") else "/ws"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def server_urls(urls: str) -> list[str]:
    """``--server`` of a cluster: several nodes, comma-separated, each like ``server_url``.
    The client starts at the first and tries the next when a node is down."""
    entries = [server_url(u.strip()) for u in urls.split(",") if u.strip()]
    if not entries:
        raise CliError("--server names no server", EXIT_USAGE)
    return entries


def token_claims(token: str) -> dict[str, object]:
    """A token's claims, unverified (the server verifies); CliError when it is not one."""
    import jwt

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise CliError("--token is not a Lapak token (see lapak token)", EXIT_TOKEN) from None
    if not isinstance(claims, dict):
        raise CliError("--token is not a Lapak token (see lapak token)", EXIT_TOKEN)
    return claims


def check_token(command: str, token: str | None) -> dict[str, object]:
    """Refuse a token for another role before connecting, naming the right command; the
    token's (unverified) claims otherwise, empty without a token."""
    if token is None:
        return {}
    claims = token_claims(token)
    role = claims.get("role")
    if role in TOKEN_ROLES[command]:
        return claims
    other = COMMAND_FOR_ROLE.get(str(role))
    hint = f"; use {other}" if other else ""
    wanted = " or ".join(TOKEN_ROLES[command])
    raise CliError(f"this is {_a(str(role))} token, not {_a(wanted)} token{hint}", EXIT_TOKEN)


def _a(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def trust(ca_file: Path | None) -> None:
    """``--ca-file``: trust the certificates in this file (instead of the system's CAs)."""
    if ca_file is None:
        return
    import ssl

    from lapak.signaling.client import SignalClient

    try:
        context = ssl.create_default_context(cafile=str(ca_file))
    except FileNotFoundError:
        raise CliError(f"cannot read --ca-file {ca_file}", EXIT_NO_FILE) from None
    except (ssl.SSLError, ValueError) as exc:
        problem = f"--ca-file {ca_file} holds no usable certificate: {exc}"
        raise CliError(problem, EXIT_USAGE) from None
    SignalClient.tls = context


def read_token_file(path: Path) -> str:
    """The token in ``--token-file``; CliError when it cannot be read or is empty."""
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise CliError(f"cannot read --token-file {path}: {exc.strerror}", EXIT_NO_FILE) from None
    if not token:
        raise CliError(f"--token-file {path} is empty", EXIT_NO_FILE)
    return token


def prepare(command: str, args_token: str | None, ca_file: Path | None) -> dict[str, object]:
    """Before a client connects: trust ``--ca-file``, check ``--token``'s role; its claims."""
    trust(ca_file)
    return check_token(command, args_token)
