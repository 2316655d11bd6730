"""The provider's error tree. The wire layer raises these; the servicers translate them once to gRPC."""

from __future__ import annotations


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
