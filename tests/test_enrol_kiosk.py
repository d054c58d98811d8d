"""The kiosk page enrols itself: /booth?enrol=CODE trades the one-time code for a booth
token, keeps it and removes the code from the address bar; a second use is refused."""

from __future__ import annotations

from typing import Any

import pytest

from lapak.signaling.enrolment import ENROLMENTS_FILE, create
from tests.test_kiosk import Env, context, env  # noqa: F401  # the kiosk's browser fixtures

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(150)]


async def test_the_kiosk_trades_its_code_once(env: Env, context: Any) -> None:  # noqa: F811
    code = create(
        env.server.data_dir / ENROLMENTS_FILE, "main", "booth-40", 900, env.server.clock()
    )
    page = await context.new_page()
    await page.goto(f"{env.base}/booth?enrol={code}")
    await page.wait_for_selector("body[data-screen=start]", timeout=10000)
    assert page.url == f"{env.base}/booth", "the code leaves the address bar"
    stored = await page.evaluate("localStorage.getItem('lapak.booth.token')")
    assert env.keys.verify(stored).booth == "booth-40"
    fresh = await env.browser.new_context()
    try:
        page2 = await fresh.new_page()
        await page2.goto(f"{env.base}/booth?enrol={code}")
        await page2.wait_for_selector("body[data-screen=token]", timeout=10000)
        kept = await page2.evaluate("localStorage.getItem('lapak.booth.token')")
        assert kept is None, "a used code gives a second browser nothing"
    finally:
        await fresh.close()
