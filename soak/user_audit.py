"""What a /ws/user client may trust, and the events it must therefore have seen; pure.

The gateway's user stream says when events may be missing: a status frame "disconnected" or
"lagged" (or the connection ending) starts such a stretch, "connected" or "reconciled" ends it.
Between those the client is *trusting*. An order placed after the client began trusting and done
(cancel confirmed) well before it stopped must have shown the client every execution report the
venue issued for it; one it did not see, with no notice, is a silently missed event (the goal is
none).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

TRUSTING_STATES = frozenset({"connected", "reconciled"})
DOUBTING_STATES = frozenset({"disconnected", "lagged"})


@dataclass(frozen=True)
class Trusted:
    start: float  # monotonic time the client began trusting the stream
    end: float | None  # when it stopped; None: still trusting


@dataclass
class UserView:
    """What one /ws/user client saw: when it trusted the stream, execution types per client order
    id, and the balances of its current trusting stretch (absolute, from outboundAccountPosition)."""

    stretches: list[Trusted] = field(default_factory=list)
    seen: dict[str, set[str]] = field(default_factory=dict)
    balances: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)
    notices: int = 0  # frames that said events may be missing

    @property
    def trusting(self) -> bool:
        return bool(self.stretches) and self.stretches[-1].end is None

    def doubt(self, now: float) -> None:
        if self.trusting:
            self.stretches[-1] = Trusted(self.stretches[-1].start, now)
        self.balances.clear()  # what comes next may not follow from them

    def on(self, frame: Mapping[str, object], now: float) -> None:
        kind = frame.get("type")
        if kind == "status":
            state = frame.get("state")
            if state in DOUBTING_STATES:
                self.notices += 1
                self.doubt(now)
            elif state in TRUSTING_STATES and not self.trusting:
                self.stretches.append(Trusted(now, None))
        elif kind == "executionReport":
            execution = str(frame.get("x"))
            # On a cancel, "c" is the cancel's own id and "C" the order's (Binance's convention).
            order_id = str(frame.get("C") or frame.get("c")) if execution == "CANCELED" else str(frame.get("c"))
            self.seen.setdefault(order_id, set()).add(execution)
        elif kind == "outboundAccountPosition" and self.trusting:
            for b in frame.get("B", ()):  # type: ignore[attr-defined]
                self.balances[str(b["a"])] = (Decimal(str(b["f"])), Decimal(str(b["l"])))


@dataclass(frozen=True)
class DoneOrder:
    client_order_id: str
    sent_at: float  # monotonic
    settled_at: float  # monotonic time its cancel was confirmed
    executions: frozenset[str]  # execution types the venue issued, e.g. {"NEW", "CANCELED"}


def covers(stretches: Sequence[Trusted], since: float, until: float) -> bool:
    return any(s.start <= since and (s.end is None or until <= s.end) for s in stretches)


def missed(view: UserView, orders: Iterable[DoneOrder], grace_s: float) -> list[tuple[str, str]]:
    """(client order id, execution type) the client should have seen and did not: the order lies
    inside one trusting stretch, with `grace_s` after its cancel for the last event to arrive."""
    out = []
    for order in orders:
        if covers(view.stretches, order.sent_at, order.settled_at + grace_s):
            seen = view.seen.get(order.client_order_id, set())
            out += [(order.client_order_id, x) for x in sorted(order.executions - seen)]
    return out


def checked(view: UserView, orders: Iterable[DoneOrder], grace_s: float) -> int:
    """How many of `orders` the client was bound to see in full (what `missed` checks)."""
    return sum(1 for o in orders if covers(view.stretches, o.sent_at, o.settled_at + grace_s))


def stream_recovery(views: Iterable[UserView], fault_at: float, limit_s: float) -> float | None:
    """Seconds from a user-stream fault until a client that stopped trusting because of it trusts
    again (the earliest such client); None if none did within `limit_s` or none noticed it."""
    best: float | None = None
    for view in views:
        ended = [s for s in view.stretches if s.end is not None and fault_at <= s.end <= fault_at + limit_s]
        if not ended:
            continue
        after = [s.start for s in view.stretches if s.start >= ended[0].end]  # type: ignore[operator]
        if after and after[0] - fault_at <= limit_s:
            took = after[0] - fault_at
            best = took if best is None else min(best, took)
    return best


def balance_mismatches(
    name: str, view: Mapping[str, tuple[Decimal, Decimal]], venue: Mapping[str, tuple[Decimal, Decimal]]
) -> list[str]:
    """Assets whose (free, locked) in `view` differ from the venue's (assets absent from `view` are
    not compared: a client only knows the assets an event told it about)."""
    return [
        f"{name}: {asset} {held} vs the venue's {venue.get(asset)}"
        for asset, held in sorted(view.items())
        if venue.get(asset, (Decimal(0), Decimal(0))) != held
    ]
