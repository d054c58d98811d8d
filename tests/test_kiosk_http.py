"""The kiosk's static files over real HTTP on the server's port: types, CSP, caching, paths.

Requests are written by hand on a raw socket so that paths reach the server exactly as
sent (an HTTP library would normalise ``..`` away before the server ever saw it).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from lapak.signaling import kiosk_http as kiosk
from lapak.signaling.config import ServerConfig
from lapak.signaling.server import SignalServer
from lapak.signaling.tokens import KeyRing


async def get(
    server: SignalServer, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {server.host}:{server.port}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        async with asyncio.timeout(5):
            raw = await reader.read()  # the server closes after each answer
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    parsed = {}
    for line in header_lines:
        key, _, value = line.partition(":")
        parsed[key.strip().lower()] = value.strip()
    return int(status_line.split()[1]), parsed, body


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/booth", "text/html; charset=utf-8"),
        ("/booth/", "text/html; charset=utf-8"),
        ("/booth/index.html", "text/html; charset=utf-8"),
        ("/booth/app.js", "text/javascript; charset=utf-8"),
        ("/booth/kiosk.css", "text/css; charset=utf-8"),
        ("/booth/favicon.svg", "image/svg+xml"),
    ],
)
async def test_files_are_served_with_their_type_and_policy(
    server: SignalServer, path: str, content_type: str
) -> None:
    status, headers, body = await get(server, path)
    assert status == 200, f"expected {path} to be served, got {status}"
    assert headers["content-type"] == content_type
    assert int(headers["content-length"]) == len(body) > 0
    csp = headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-cache"
    assert headers["etag"].startswith('"')


async def test_every_module_the_page_imports_is_served(server: SignalServer) -> None:
    """The page and its modules name only files the server has (no CDN, nothing outside)."""
    seen: set[str] = set()
    todo = ["/booth"]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        status, _, body = await get(server, path)
        assert status == 200, f"{path} is referenced but answers {status}"
        text = body.decode()
        refs = re.findall(r'(?:src|href)="([^"]+)"', text) + re.findall(r'from "(\./[^"]+)"', text)
        for ref in refs:
            assert not re.match(r"^(https?:)?//", ref), f"{path} loads {ref} from outside"
            todo.append("/booth/" + ref.removeprefix("./").removeprefix("/booth/"))
    assert {"/booth/app.js", "/booth/signal.js", "/booth/media.js", "/booth/i18n.js"} <= seen


async def test_no_inline_script_or_style(server: SignalServer) -> None:
    _, _, body = await get(server, "/booth")
    html = body.decode()
    assert "<style" not in html and " style=" not in html
    for tag in re.findall(r"<script[^>]*>", html):
        assert "src=" in tag, f"inline script tag {tag}"


async def test_unchanged_file_revalidates_with_304(server: SignalServer) -> None:
    _, headers, _ = await get(server, "/booth/app.js")
    status, again, body = await get(server, "/booth/app.js", {"If-None-Match": headers["etag"]})
    assert status == 304 and body == b"" and again["etag"] == headers["etag"]
    status, _, body = await get(server, "/booth/app.js", {"If-None-Match": '"stale"'})
    assert status == 200 and body


@pytest.mark.parametrize(
    "path",
    [
        "/booth/../signaling/server.py",
        "/booth/..%2fserver.py",
        "/booth/%2e%2e/kiosk.py",
        "/booth/.hidden.js",
        "/booth/sub/app.js",
        "/booth//etc/passwd",
        "/booth/nothing.js",
        "/booth/kiosk.py",
        "/booth/app.js%00.css",
        "/boothx",
    ],
)
async def test_paths_outside_the_kiosk_files_are_not_found(server: SignalServer, path: str) -> None:
    status, _, body = await get(server, path)
    assert status == 404, f"{path} should be refused, got {status}: {body[:80]!r}"
    assert b"import" not in body


async def test_other_methods_are_refused(server: SignalServer) -> None:
    status, _, _ = await get(server, "/booth", method="POST")
    assert status == 405


def test_asset_listing_is_flat_and_typed() -> None:
    assets = kiosk.load_assets()
    assert "index.html" in assets and "app.js" in assets
    assert all(kiosk.asset_name(f"/booth/{name}") == name for name in assets)
    assert kiosk.asset_name("/booth/../x.js") is None


async def test_the_page_may_connect_to_the_other_nodes_of_its_cluster(
    tmp_path: Path, keys: KeyRing
) -> None:
    """A cluster's page follows ``moved`` to another node (another origin): its CSP lets the
    websocket reach the serving node's ``allowed_origins`` as ``ws(s)://``, nothing else."""
    config = ServerConfig.from_dict(
        {"server": {"allowed_origins": ["http://node-b.lan:8765", "https://node-c.lan"]}}
    )
    server = SignalServer(tmp_path / "d", keys, host="127.0.0.1", port=0, config=config)
    await server.start()
    try:
        _, headers, _ = await get(server, "/booth")
    finally:
        await server.close()
    connect = next(
        part.split()[1:]
        for part in headers["content-security-policy"].split("; ")
        if part.startswith("connect-src")
    )
    assert "'self'" in connect
    assert "ws://node-b.lan:8765" in connect and "wss://node-c.lan" in connect
    assert not [c for c in connect if c.startswith("http")], "websocket schemes only"
    assert kiosk.websocket_origins(["http://a:1", "https://b", "file://x", "http://[::1]:8"]) == (
        "ws://a:1",
        "wss://b",
    ), "an IPv6 literal is no CSP host-source (Chromium ignores it with a console error)"
