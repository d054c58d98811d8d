"""The supervisor view's voice keys (``l`` listen only, ``c`` coach, ``b`` barge) through
Textual's pilot against the fake desk session: the request each key sends, the server's
refusal shown as it says, the banner that tells the supervisor who hears them."""

from __future__ import annotations

from conftest import wait_for
from console_fake import FakeDeskSession, fake, ready

from lapak.console import i18n
from lapak.console.keys import BINDING_IDS, MUTATING_ACTIONS, SUPERVISOR_KEYS
from lapak.console.supervisor import SupervisorConsole

SIZE = (160, 48)


def supervisor(**kwargs: object) -> SupervisorConsole:
    return SupervisorConsole("ws://fake", "token", media=False, session_factory=FakeDeskSession,
                             **kwargs)  # type: ignore[arg-type]  # fmt: skip


def banner(app: SupervisorConsole) -> str:
    return app.desk_screen.banner.render().plain


def message(app: SupervisorConsole) -> str:
    return app.desk_screen.message.render().plain


def test_voice_keys_have_ids_and_change_nothing_on_a_visit() -> None:
    ids = {k.id: k for k in SUPERVISOR_KEYS}
    for name, key in (("monitor", "l"), ("coach", "c"), ("barge", "b")):
        assert ids[name].key == key and ids[name].action == f"supervise('{name}')"
        assert name in BINDING_IDS, "the config file's [keys] may rebind it"
        assert "supervise" not in MUTATING_ACTIONS, "a supervisor's own voice is not a visit"


async def test_a_token_without_the_grant_is_refused_with_the_servers_words() -> None:
    app = supervisor()
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        await pilot.press("c")
        await wait_for(lambda: ("supervise", "d1", "coach") in fake(app).calls, "coach asked")
        await wait_for(lambda: "Cannot switch to coaching" in message(app), "the refusal shown")
        assert "forbidden: this token may not coach" in message(app)
        assert app.supervision == "monitor" and "READ-ONLY" in banner(app)
        await pilot.press("b")
        await wait_for(lambda: "Cannot switch to barging in" in message(app), "barge refused")
        assert app.supervision == "monitor"


async def test_coach_then_barge_then_listen_only_with_the_grants() -> None:
    app = supervisor()
    fake(app).grants = frozenset({"monitor", "coach", "barge"})
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        await pilot.press("c")
        await wait_for(lambda: app.supervision == "coach", "coaching")
        assert "COACHING" in banner(app) and "the claimant does not" in banner(app)
        await pilot.press("b")
        await wait_for(lambda: app.supervision == "barge", "barging")
        assert "BARGE" in banner(app)
        await pilot.press("l")
        await wait_for(lambda: app.supervision == "monitor", "listening only")
        assert "READ-ONLY" in banner(app)
        modes = [c[2] for c in fake(app).calls if c[0] == "supervise"]
        assert modes == ["coach", "barge", "monitor"]


async def test_voice_keys_are_shown_in_indonesian() -> None:
    app = supervisor(language="id")
    try:
        async with app.run_test(size=SIZE) as _pilot:
            await ready(app)
            labels = {e.binding.id: e.binding.description for e in app.active_bindings.values()}
            assert labels.get("coach") == "Bimbing" and labels.get("barge") == "Ikut bicara"
            assert labels.get("monitor") == "Dengar saja"
    finally:
        i18n.set_language("en")


async def test_switching_desk_while_coaching_goes_back_to_listening_first() -> None:
    app = supervisor()
    fake(app).grants = frozenset({"monitor", "coach"})
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        await pilot.press("c")
        await wait_for(lambda: app.supervision == "coach", "coaching")
        await app._watch("d2")
        calls = [c for c in fake(app).calls if c[0] in ("supervise", "watch")]
        assert calls[-2:] == [("supervise", "d1", "monitor"), ("watch", "d2")]
        assert app.supervision == "monitor"
