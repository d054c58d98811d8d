"""Operating a running server: the TLS certificate reloaded on SIGHUP without dropping
connections, and the latency histograms and build info on /metrics."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
import urllib.request
from pathlib import Path

import pytest
from conftest import wait_for
from prometheus_client.parser import text_string_to_metric_families
from raw_client import discard, hello, request
from test_cli import self_signed  # one certificate maker for the tests

from lapak.signaling.config import ServerConfig
from lapak.signaling.metrics import version
from lapak.signaling.server import SignalServer, run_server
from lapak.signaling.tls import CertFiles
from lapak.signaling.tokens import KeyRing


def new_cert(folder: Path) -> bytes:
    """A fresh self-signed certificate and key written as ``folder``/cert.pem and key.pem
    (a new key each time, so each certificate differs); returns the certificate's DER."""
    folder.mkdir(exist_ok=True)
    cert, _ = self_signed(folder)
    return ssl.PEM_cert_to_DER_cert(cert.read_text())


def any_cert() -> ssl.SSLContext:
    """The test compares the certificate itself, so it accepts any."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def served_cert(port: int) -> bytes:
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=any_cert())
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        assert isinstance(der, bytes)
        return der
    finally:
        writer.close()
        await writer.wait_closed()


async def test_sighup_reloads_the_certificate_and_keeps_connections(
    tmp_path: Path, keys: KeyRing, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lapak.signal")
    files = CertFiles(tmp_path / "cert.pem", tmp_path / "key.pem")
    first = new_cert(tmp_path)
    server = SignalServer(tmp_path / "data", keys, port=0, tls_files=files)
    stop = asyncio.Event()
    # A handler left by an earlier test would make the wait below pass before the server
    # installs its own (and the SIGHUP would go to the stale one): start from the default.
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    running = asyncio.create_task(run_server(server, stop))
    try:
        await wait_for(
            lambda: signal.getsignal(signal.SIGHUP) != signal.SIG_DFL or running.done(),
            "the server listens and handles SIGHUP",
        )
        assert not running.done(), "the server started"
        token = keys.issue("supervisor", "s", "main")
        old = await hello(server.url, token, any_cert())
        reader = old.transport.get_extra_info("ssl_object")
        assert reader.getpeercert(binary_form=True) == first

        second = new_cert(tmp_path)  # renewed in place, as certbot does
        os.kill(os.getpid(), signal.SIGHUP)
        await wait_for(lambda: "event=tls_reloaded" in caplog.text, "the reload is logged")
        assert await served_cert(server.port) == second, "new handshakes get the new cert"
        answer = await request(old, {"type": "office_stats"})
        assert answer["type"] in ("ack", "error") and old.close_code is None, (
            "the connection opened before the reload is still served"
        )

        # A key that does not match its certificate: refused, the live chain stays.
        new_cert(tmp_path / "other")
        files.cert.write_bytes((tmp_path / "other" / "cert.pem").read_bytes())
        os.kill(os.getpid(), signal.SIGHUP)
        await wait_for(lambda: "event=tls_reload_failed" in caplog.text, "the failure is logged")
        assert await served_cert(server.port) == second, "a bad pair leaves the old chain"
        await old.close()
    finally:
        stop.set()
        await running


def scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """/metrics parsed with prometheus_client's own parser: sample name -> labels -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return samples


async def test_metrics_have_latency_histograms_and_build_info(
    tmp_path: Path, keys: KeyRing
) -> None:
    config = ServerConfig(rate_per_s=1e6, rate_burst=100_000)
    server = SignalServer(tmp_path / "data", keys, port=0, config=config)
    await server.start()
    try:
        officer = await hello(server.url, keys.issue("officer", "ana", "main", desk="d1"))
        booth = await hello(server.url, keys.issue("booth", "b1", "main", booth="b1"))
        claimant = {"name": "Siti", "membership_no": "123"}
        visit = (await request(booth, {"type": "start_visit", "claimant": claimant}))["visit"]
        drain = asyncio.create_task(discard(booth))
        for decision in ("approve", "reopen", "approve"):
            step = {"type": "decide", "visit": visit, "step": 0, "decision": decision}
            assert (await request(officer, step))["type"] == "ack"
        offer = {"type": "sdp", "visit": visit, "sdp_type": "offer", "sdp": "v=0", "offer_id": "o1"}
        await request(officer, offer)
        samples = await asyncio.to_thread(scrape, server.port)
        await officer.close()
        await booth.close()
        await drain
    finally:
        await server.close()

    def count(name: str) -> float:
        return sum(samples.get(f"{name}_count", {}).values())

    assert count("lapak_ack_latency_seconds") >= 5, "hello, start_visit, 3 decisions answered"
    assert count("lapak_commit_latency_seconds") >= 4, "start_visit and 3 decisions committed"
    assert count("lapak_relay_latency_seconds") == 1, "one offer relayed to the booth"
    buckets = samples["lapak_commit_latency_seconds_bucket"]
    assert buckets[(("le", "+Inf"),)] == count("lapak_commit_latency_seconds")
    info = samples["lapak_build_info"]
    assert [dict(labels)["version"] for labels in info] == [version()]
    assert list(info.values()) == [1.0]
