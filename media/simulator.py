"""Run several simulated booths in one process (demo, tests, benchmarks)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence

from lapak.media.booth import BoothAgent, BoothMediaConfig, ClaimantInfo
from lapak.signaling.tokens import KeyRing

log = logging.getLogger("lapak.simulator")

FIRST_NAMES = ("Siti", "Budi", "Dewi", "Agus", "Rina", "Joko", "Wati", "Hendra", "Lestari", "Eko")
LAST_NAMES = ("Rahayu", "Santoso", "Lestari", "Wibowo", "Kusuma", "Hidayat", "Pratama", "Sari")


def booth_id(index: int) -> str:
    return f"booth-{index + 1:02d}"


def generated_claimant(rng: random.Random) -> ClaimantInfo:
    """A plausible claimant: a name and an 11-digit membership number."""
    name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
    membership = "".join(str(rng.randrange(10)) for _ in range(11))
    return ClaimantInfo(name=name, membership_no=membership, claim_type="JHT")


def make_booths(
    url: str,
    keys: KeyRing,
    count: int,
    office: str = "main",
    media: BoothMediaConfig | None = None,
    seed: int | None = None,
    first: int = 0,
    entries: Sequence[str] = (),
) -> list[BoothAgent]:
    """``count`` booths of ``office``; ``entries``: a cluster's other nodes (see SignalClient)."""
    rng = random.Random(seed)
    agents = []
    for index in range(first, first + count):
        name = booth_id(index)
        token = keys.issue("booth", sub=name, office=office, booth=name)
        agents.append(
            BoothAgent(
                url=url,
                token=token,
                name=name,
                index=index % 6,
                claimant=generated_claimant(rng),
                media=media or BoothMediaConfig(),
                entries=tuple(entries),
            )
        )
    return agents


async def _start_all(agents: list[BoothAgent], retry: bool) -> None:
    """Start the booths together; the first failure cancels the others and is raised."""
    try:
        async with asyncio.TaskGroup() as group:
            for agent in agents:
                group.create_task(agent.start(retry=retry), name=f"start-{agent.name}")
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None


async def run_booths(agents: list[BoothAgent], stop: asyncio.Event, *, retry: bool = False) -> None:
    """Start every booth, run until ``stop``, then close them all.

    ``retry``: wait (with back-off) for a server that is not up yet; ``stop`` still ends it.
    A booth that cannot start (its token refused) stops them all: the error is raised.
    """
    try:
        starting = asyncio.ensure_future(_start_all(agents, retry))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if starting.done():
                starting.result()  # a start failure is raised here
                await stopping
        finally:
            for waiter in (starting, stopping):
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await waiter
    finally:
        await asyncio.gather(*(agent.close() for agent in agents), return_exceptions=True)
