"""Single-use confirmation ids for previewed orders (pure: the caller passes the clock).

An assistant previews an order and gets a confirmation id; only a second, deliberate call with that
id places it. Each id is bound to the caller that asked for the preview (their token's identity) and
to the exact order previewed (it is stored here; the confirming call cannot change it), expires
after a short time and can be redeemed once. Spent and expired ids are remembered for a while so a
refusal can say what happened instead of "unknown".
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

T = TypeVar("T")

DEFAULT_TTL_MS = 120_000  # long enough to ask the user, short enough that prices have not moved far
MAX_PENDING = 1000  # across callers: memory stays bounded whatever callers do
MAX_PENDING_PER_CALLER = 20  # one caller's previews cannot evict everyone else's
CONFIRMATION_ID_BYTES = 18  # 144 random bits: not guessable


class Refusal(StrEnum):
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    USED = "used"
    FOREIGN = "foreign"


class ConfirmationRefused(Exception):
    """A confirmation id that cannot place anything, with what the caller should do instead."""

    def __init__(self, reason: Refusal, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Confirmation(Generic[T]):
    confirmation_id: str
    caller: str
    order: T
    expires_at_ms: int


def new_confirmation_id() -> str:
    return "cf-" + secrets.token_urlsafe(CONFIRMATION_ID_BYTES)


class ConfirmationBook(Generic[T]):
    """Pending confirmations, oldest first. Not thread-safe; in asyncio `redeem` is atomic because
    it never awaits, so two concurrent confirmations of one id place at most one order."""

    def __init__(
        self,
        ttl_ms: int = DEFAULT_TTL_MS,
        *,
        max_pending: int = MAX_PENDING,
        max_per_caller: int = MAX_PENDING_PER_CALLER,
        new_id: Callable[[], str] = new_confirmation_id,
    ) -> None:
        if ttl_ms <= 0 or max_pending <= 0 or max_per_caller <= 0:
            raise ValueError("ttl_ms, max_pending and max_per_caller must be positive")
        self.ttl_ms = ttl_ms
        self._max_pending = max_pending
        self._max_per_caller = max_per_caller
        self._new_id = new_id
        self._pending: OrderedDict[str, Confirmation[T]] = OrderedDict()
        # Ids no longer redeemable, kept (bounded) until one TTL past their expiry, only to explain refusals.
        self._spent: OrderedDict[str, tuple[Refusal, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def issue(self, caller: str, order: T, now_ms: int) -> Confirmation[T]:
        self._prune(now_ms)
        mine = [k for k, v in self._pending.items() if v.caller == caller]
        for key in mine[: max(0, len(mine) - self._max_per_caller + 1)]:
            self._forget(key, Refusal.EXPIRED, now_ms)
        while len(self._pending) >= self._max_pending:
            self._forget(next(iter(self._pending)), Refusal.EXPIRED, now_ms)
        confirmation = Confirmation(self._new_id(), caller, order, now_ms + self.ttl_ms)
        self._pending[confirmation.confirmation_id] = confirmation
        return confirmation

    def redeem(self, confirmation_id: str, caller: str, now_ms: int) -> T:
        """The order previewed under `confirmation_id`, removed so it can be redeemed only once."""
        self._prune(now_ms)
        pending = self._pending.get(confirmation_id)
        if pending is None:
            spent = self._spent.get(confirmation_id)
            raise _refusal(spent[0] if spent is not None else Refusal.UNKNOWN)
        if pending.caller != caller:
            # Not consumed: a caller who was handed someone else's id must not be able to cancel it.
            raise _refusal(Refusal.FOREIGN)
        if now_ms >= pending.expires_at_ms:
            self._forget(confirmation_id, Refusal.EXPIRED, now_ms)
            raise _refusal(Refusal.EXPIRED)
        self._forget(confirmation_id, Refusal.USED, now_ms)
        return pending.order

    def _forget(self, confirmation_id: str, why: Refusal, now_ms: int) -> None:
        self._pending.pop(confirmation_id, None)
        self._spent[confirmation_id] = (why, now_ms + self.ttl_ms)
        self._spent.move_to_end(confirmation_id)
        while len(self._spent) > self._max_pending:
            self._spent.popitem(last=False)

    def _prune(self, now_ms: int) -> None:
        expired = [k for k, v in self._pending.items() if now_ms >= v.expires_at_ms]
        for key in expired:
            self._forget(key, Refusal.EXPIRED, now_ms)
        while self._spent and next(iter(self._spent.values()))[1] <= now_ms:
            self._spent.popitem(last=False)


_ADVICE = {
    Refusal.UNKNOWN: (
        "Unknown confirmation_id: no order was placed. Use the confirmation_id returned by place_order "
        "exactly as given, or call place_order again for a new preview."
    ),
    Refusal.EXPIRED: (
        "This confirmation_id has expired: no order was placed. Prices may have moved; call place_order "
        "again for a fresh preview and confirm that one."
    ),
    Refusal.USED: (
        "This confirmation_id was already used: its order was sent once and will not be sent again. "
        "Call get_order with the client_order_id from the preview to see its state."
    ),
    Refusal.FOREIGN: (
        "This confirmation_id belongs to another caller: no order was placed. Only the caller who asked "
        "for the preview can confirm it; call place_order yourself for a preview of your own."
    ),
}


def _refusal(reason: Refusal) -> ConfirmationRefused:
    return ConfirmationRefused(reason, _ADVICE[reason])
