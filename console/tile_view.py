"""What each tile shows, from the desk model (the server's view of each visit) and the media
link: nothing the server sends is recomputed; only "how long ago" uses the console's clock."""

from __future__ import annotations

from typing import Any

from lapak.console.config import ConsoleConfig
from lapak.console.tile import TileInfo
from lapak.media.desk_model import DeskModel
from lapak.signaling.messages import VisitView


def silence_level(silent_s: float | None, config: ConsoleConfig) -> str:
    """ "" | "amber" | "red": how long a claimant off air has not been spoken to."""
    if silent_s is None:
        return ""
    if silent_s >= config.red_after_s:
        return "red"
    if silent_s >= config.amber_after_s:
        return "amber"
    return ""


def tile_info(
    model: DeskModel, visit: VisitView | None, now: float, config: ConsoleConfig, engine: Any
) -> TileInfo:
    """One tile's text: the visit as the server last said (with decisions still pending),
    the link's state and grade, the booth's audio level."""
    if visit is None:
        return TileInfo(None)
    visit_id = visit.visit
    on_air = visit_id == model.on_air
    silent = model.silent_for(visit_id, now)
    info = TileInfo(
        visit_id,
        [(s.name, model.step_status(visit_id, i)) for i, s in enumerate(visit.steps)],
        current_step=visit.current_step,
        booth=visit.booth,
        name=visit.name,
        membership_no=visit.membership_no,
        claim_type=visit.claim_type,
        on_air=on_air,
        in_visit_s=now - visit.started_at,
        silent_s=silent,
        silence_level="" if on_air else silence_level(silent, config),
    )
    if not visit.booth_present:  # the server's presence, not a media glitch
        info.away_since = visit.booth_away_since or now
    link = engine.links.get(visit_id) if engine is not None else None
    if link is not None:
        info.link_state = getattr(link, "state", "connecting")
        stats = getattr(link, "stats", None)
        if stats is not None and info.link_state == "connected":
            info.grade = getattr(stats, "grade", None)
            info.rtt_ms = getattr(stats, "rtt_ms", None)
        audio = getattr(link, "audio", None)
        info.audio_dbfs = float(getattr(audio, "level_dbfs", -100.0))
    return info
