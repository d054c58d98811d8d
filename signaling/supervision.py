"""Who coaches or barges which desk: at most one supervisor connection per desk, and one
desk per supervisor connection. Bound to connections, not to the log (a supervisor who
leaves stops supervising), so it is bookkeeping beside the state, like presence; every
change is logged as a ``supervision_changed`` event by the hub for the audit trail."""

from __future__ import annotations

from dataclasses import dataclass

from lapak.signaling.protocol import SupervisionMode


@dataclass(frozen=True)
class Supervising:
    """A supervisor connection's part in a desk's conversation."""

    desk: str
    conn: int
    sub: str
    role: str
    mode: SupervisionMode  # coach | barge (monitor is no supervision)

    @property
    def peer(self) -> str:
        """The name the desk's officer knows this supervisor by (its ``sdp`` ``peer``)."""
        return str(self.conn)


class Supervisions:
    def __init__(self) -> None:
        self._by_desk: dict[str, Supervising] = {}
        self._by_conn: dict[int, str] = {}

    def of_desk(self, desk: str) -> Supervising | None:
        return self._by_desk.get(desk)

    def of_conn(self, conn: int) -> Supervising | None:
        desk = self._by_conn.get(conn)
        return self._by_desk.get(desk) if desk is not None else None

    def barged(self, desk: str | None) -> bool:
        """Does a supervisor barge into ``desk``'s on-air conversation?"""
        found = self._by_desk.get(desk) if desk is not None else None
        return found is not None and found.mode == "barge"

    def start(self, supervising: Supervising) -> None:
        """The caller ended the connection's other desk and checked nobody else holds it."""
        self._by_desk[supervising.desk] = supervising
        self._by_conn[supervising.conn] = supervising.desk

    def end(self, desk: str) -> Supervising | None:
        ended = self._by_desk.pop(desk, None)
        if ended is not None:
            self._by_conn.pop(ended.conn, None)
        return ended
