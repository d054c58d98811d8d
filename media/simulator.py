"""Run several simulated booths in one process (demo, tests, benchmarks)."""

from __future__ import annotations

import asyncio
import logging
import random

from media.booth import BoothAgent, BoothMediaConfig, ClaimantInfo
from signaling.tokens import KeyRing

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
) -> list[BoothAgent]:
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
            )
        )
    return agents


async def run_booths(agents: list[BoothAgent], stop: asyncio.Event) -> None:
    """Start every booth, run until ``stop``, then close them all."""
    try:
        await asyncio.gather(*(agent.start() for agent in agents))
        await stop.wait()
    finally:
        await asyncio.gather(*(agent.close() for agent in agents), return_exceptions=True)
