"""The provider's error tree. The wire layer raises these; the servicers translate them once to gRPC.

Every error says whether retrying the same call later can succeed (`retryable`), and carries
what the exchange said (Binance ``code``/``msg``, HTTP status, how long to wait) so the next hop
can build its status without parsing messages.
"""

from __future__ import annotations

from typing import Final

# Binance codes with a meaning the client acts on (reference §5.1).
CODE_DISCONNECTED: Final = -1001
CODE_TOO_MANY_REQUESTS: Final = -1003
CODE_UNEXPECTED_RESP: Final = -1006
CODE_TIMEOUT: Final = -1007
CODE_SERVER_BUSY: Final = -1008
CODE_TOO_MANY_ORDERS: Final = -1015
CODE_INVALID_TIMESTAMP: Final = -1021
CODE_INVALID_SIGNATURE: Final = -1022
CODE_BAD_SYMBOL: Final = -1121
CODE_BAD_API_KEY_FMT: Final = -2014
CODE_REJECTED_MBX_KEY: Final = -2015

# -1100 … -1130 are request-parameter errors (-1121 "Invalid symbol." among them): the caller's fault.
_BAD_REQUEST_CODES: Final = range(-1130, -1099)
# Transient on Binance's side: the same request may succeed later.
_RETRYABLE_CODES: Final = frozenset({CODE_DISCONNECTED, CODE_SERVER_BUSY, CODE_INVALID_TIMESTAMP})
# "Execution status unknown" (reference §4.6).
UNKNOWN_EXECUTION_CODES: Final = frozenset({CODE_UNEXPECTED_RESP, CODE_TIMEOUT})


def is_bad_request(code: int) -> bool:
    """A parameter error (-1100 … -1130, including -1121 invalid symbol): do not retry unchanged."""
    return code in _BAD_REQUEST_CODES


class ProviderError(Exception):
    """Base of every error the provider reports to a client."""

    retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ExchangeUnavailable(ProviderError):
    """The venue could not be reached or answered 5xx (for reads; orders use ExecutionUnknown)."""

    retryable = True

    def __init__(self, message: str, retry_after_ms: int = 1000) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms


class NotBuilt(ProviderError):
    """The capability behind this call is not part of this provider build yet."""


class BinanceError(ProviderError):
    """The exchange answered with ``{"code": …, "msg": …}``.

    ``code`` is 0 when the answer had no Binance error body (a WAF 403, a 404 page). ``data``
    is the body's optional ``data`` (cancel-replace's partial results on 409 -2021).
    """

    def __init__(self, code: int, msg: str, http_status: int, *, data: object = None) -> None:
        super().__init__(f"HTTP {http_status} {code}: {msg}")
        self.code = code
        self.msg = msg
        self.http_status = http_status
        self.data = data
        self.retryable = code in _RETRYABLE_CODES

    @property
    def is_bad_request(self) -> bool:
        return is_bad_request(self.code)

    @property
    def is_auth_error(self) -> bool:
        """Missing, unknown or unpermitted API key, or a bad signature: fatal for that key."""
        return self.http_status == 401 or self.code in (
            CODE_BAD_API_KEY_FMT,
            CODE_REJECTED_MBX_KEY,
            CODE_INVALID_SIGNATURE,
        )


class ClockSkew(BinanceError):
    """-1021: the request's timestamp was outside the recvWindow or ahead of the server.

    The request was rejected (not executed); the client has re-measured its clock offset, so
    sending it again is safe.
    """

    def __init__(self, msg: str, http_status: int = 400) -> None:
        super().__init__(CODE_INVALID_TIMESTAMP, msg, http_status)
        self.retryable = True


class RateLimited(ProviderError):
    """HTTP 429, or our own weight budget says the call would have to wait too long."""

    retryable = True

    def __init__(self, message: str, retry_after_ms: int, code: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms
        self.code = code
        """-1003 (weight), -1015 (order count), or None when our own budget refused."""


class IpBanned(ProviderError):
    """HTTP 418: the IP is banned; nothing is sent until ``until_ms`` (server clock)."""

    retryable = True

    def __init__(self, message: str, retry_after_ms: int, until_ms: int) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms
        self.until_ms = until_ms


class ExecutionUnknown(ProviderError):
    """A state-changing call (order placement/cancel) may or may not have taken effect.

    Timeout or connection loss after sending, a 5xx, or -1006/-1007. The caller must reconcile
    (query the order by its client id, watch the user stream) before sending it again.
    """

    retryable = False

    def __init__(self, message: str, *, code: int | None = None, http_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status


class UnexpectedResponse(ProviderError):
    """The exchange answered 2xx with a body that does not have the documented shape."""


class CredentialsMissing(ProviderError):
    """A signed (account or trading) call was made without API credentials configured."""


class InvalidArgument(ProviderError):
    """A request parameter is wrong; ``field`` names it (the request's own field name)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class BookNotInSync(ProviderError):
    """The local order book is (re)synchronising: it is not served as if it were good."""

    retryable = True

    def __init__(self, symbol: str, message: str, retry_after_ms: int = 500) -> None:
        super().__init__(message)
        self.symbol = symbol
        self.retry_after_ms = retry_after_ms


class StreamEnded(ProviderError):
    """A subscription ended on the provider's side (shutting down, or the symbol was released)."""

    retryable = True


# ----------------------------------------------------------------- trading (issue #5)

CODE_NEW_ORDER_REJECTED: Final = -2010
CODE_CANCEL_REJECTED: Final = -2011
CODE_NO_SUCH_ORDER: Final = -2013


class TradingDisabled(ProviderError):
    """Orders are refused: PROVIDER_TRADING is off, or the kill switch is engaged."""


class NotionalLimit(ProviderError):
    """The order is above the provider's configured per-order or per-symbol notional cap."""

    def __init__(self, symbol: str, message: str) -> None:
        super().__init__(message)
        self.symbol = symbol


class FilterViolation(InvalidArgument):
    """A pre-trade check of the symbol's exchangeInfo filters failed; nothing was sent.

    ``filter_type`` is the Binance filter (``PRICE_FILTER``, ``LOT_SIZE`` …) and ``nearest_valid``
    the closest value that would pass, when there is one.
    """

    def __init__(self, field: str, message: str, filter_type: str, nearest_valid: str | None = None) -> None:
        super().__init__(field, message)
        self.filter_type = filter_type
        self.nearest_valid = nearest_valid


class InsufficientBalance(ProviderError):
    """The exchange refused the order for lack of funds (-2010); ``available`` is the free balance."""

    def __init__(self, asset: str, available: str | None, message: str, *, code: int, msg: str) -> None:
        super().__init__(message)
        self.asset = asset
        self.available = available
        self.code = code
        self.msg = msg
