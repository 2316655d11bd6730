"""Client-side request signing for Binance Spot (REST and WebSocket API).

Pure code: no sockets, no clocks (timestamps are passed in). The only IO is
`Ed25519Signer.from_pem_file`, which reads a key file once at start-up.

REST rule (reference §3.2): the signature covers the percent-encoded query
string immediately followed by the percent-encoded body, with no separator,
and the request must go on the wire byte for byte as signed. `sign_rest`
therefore returns the exact query string and body to send; send the URL as
already encoded (e.g. aiohttp ``yarl.URL(url, encoded=True)``) and the body as
raw bytes.

WS API rule (reference §3.3): the payload is every param except ``signature``
(including ``apiKey``), sorted by name, joined as ``name=value`` with ``&``,
*not* percent-encoded.

Secrets (HMAC secret, Ed25519 private key, and the API key itself) never
appear in ``repr()``/``str()`` of anything defined here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Final, TypeAlias
from urllib.parse import quote

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = [
    "API_KEY_HEADER",
    "Ed25519Signer",
    "HmacSigner",
    "KeyType",
    "ParamValue",
    "Params",
    "SignedRequest",
    "Signer",
    "encode_params",
    "format_value",
    "load_signer",
    "percent_encode",
    "sign_rest",
    "sign_ws_params",
    "ws_signature_payload",
]

API_KEY_HEADER: Final = "X-MBX-APIKEY"
FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"

# A parameter value as the caller holds it. Money is Decimal or str, never float.
# Sequences render as compact JSON arrays (``symbols=["BTCUSDT","BNBBTC"]``).
ParamValue: TypeAlias = str | int | Decimal | bool | Sequence[str]
# Parameters in wire order: a mapping (insertion order) or (name, value) pairs.
Params: TypeAlias = Mapping[str, ParamValue] | Iterable[tuple[str, ParamValue]]


class KeyType(StrEnum):
    HMAC_SHA256 = "HMAC_SHA256"
    ED25519 = "ED25519"


def _fingerprint(api_key: str) -> str:
    """A short, non-reversible tag that identifies a key in logs without echoing it."""
    return "sha256:" + hashlib.sha256(api_key.encode("utf-8")).hexdigest()[:8]


class Signer(ABC):
    """Holds one API key and its signing secret; signs payload bytes."""

    __slots__ = ("_api_key",)

    def __init__(self, api_key: str) -> None:
        if not api_key:
            raise ValueError("API key must not be empty")
        self._api_key = api_key

    @property
    def api_key(self) -> str:
        """The API key (sent in the ``X-MBX-APIKEY`` header / ``apiKey`` param)."""
        return self._api_key

    @property
    def key_id(self) -> str:
        """Log-safe fingerprint of the API key."""
        return _fingerprint(self._api_key)

    @property
    @abstractmethod
    def key_type(self) -> KeyType: ...

    @abstractmethod
    def sign(self, payload: bytes) -> str:
        """Signature text as Binance expects it (HMAC: hex; Ed25519: base64), not URL-encoded."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key_id={self.key_id!r})"

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError(f"{type(self).__name__} holds a secret and cannot be pickled")


class HmacSigner(Signer):
    """HMAC-SHA256 keyed with the secret key; lowercase hex output."""

    __slots__ = ("_secret",)

    def __init__(self, api_key: str, secret: str | bytes) -> None:
        super().__init__(api_key)
        secret_bytes = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        if not secret_bytes:
            raise ValueError("HMAC secret must not be empty")
        self._secret = secret_bytes

    @property
    def key_type(self) -> KeyType:
        return KeyType.HMAC_SHA256

    def sign(self, payload: bytes) -> str:
        return hmac.new(self._secret, payload, hashlib.sha256).hexdigest()


class Ed25519Signer(Signer):
    """Ed25519 signature over the payload; standard base64 output."""

    __slots__ = ("_private_key",)

    def __init__(self, api_key: str, private_key: Ed25519PrivateKey) -> None:
        super().__init__(api_key)
        if not isinstance(private_key, Ed25519PrivateKey):
            raise TypeError("private_key must be an Ed25519PrivateKey")
        self._private_key = private_key

    @classmethod
    def from_pem(cls, api_key: str, pem: bytes, password: bytes | None = None) -> Ed25519Signer:
        """Load a PEM (PKCS#8) Ed25519 private key. Errors never quote the key material."""
        try:
            key = serialization.load_pem_private_key(pem, password=password)
        except (ValueError, TypeError) as exc:
            # cryptography's messages do not contain key bytes, but keep ours generic anyway.
            raise ValueError(f"cannot load PEM private key: {type(exc).__name__}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"PEM private key is {type(key).__name__}, expected Ed25519")
        return cls(api_key, key)

    @classmethod
    def from_pem_file(cls, api_key: str, path: str | os.PathLike[str], password: bytes | None = None) -> Ed25519Signer:
        return cls.from_pem(api_key, Path(path).read_bytes(), password)

    @property
    def key_type(self) -> KeyType:
        return KeyType.ED25519

    def public_key_pem(self) -> bytes:
        """SubjectPublicKeyInfo PEM of the public half (what Binance/the simulator registers)."""
        return self._private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, payload: bytes) -> str:
        return base64.b64encode(self._private_key.sign(payload)).decode("ascii")


def load_signer(
    api_key: str,
    *,
    secret: str | None = None,
    private_key_file: str | os.PathLike[str] | None = None,
    password: bytes | None = None,
) -> Signer:
    """Build the signer from configuration: exactly one of `secret` (HMAC) or `private_key_file` (Ed25519)."""
    if (secret is None) == (private_key_file is None):
        raise ValueError("configure exactly one of an HMAC secret or an Ed25519 private key file")
    if secret is not None:
        return HmacSigner(api_key, secret)
    assert private_key_file is not None
    return Ed25519Signer.from_pem_file(api_key, private_key_file, password)


# --------------------------------------------------------------------------- encoding


def format_value(value: ParamValue) -> str:
    """Render one parameter value as its wire text (before percent-encoding)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"non-finite Decimal parameter: {value}")
        return format(value, "f")
    if isinstance(value, str):
        return value
    if isinstance(value, float):  # pragma: no cover - excluded by the type, guarded at runtime
        raise TypeError("float parameters are not allowed; use Decimal or str")
    if isinstance(value, Sequence):
        items = list(value)
        if not all(isinstance(item, str) for item in items):
            raise TypeError("sequence parameters must contain strings")
        return "[" + ",".join(json.dumps(item, ensure_ascii=False) for item in items) + "]"
    raise TypeError(f"unsupported parameter type {type(value).__name__}")


def percent_encode(text: str) -> str:
    """UTF-8 percent-encoding; only RFC 3986 unreserved characters stay literal."""
    return quote(text, safe="", encoding="utf-8", errors="strict")


def _items(params: Params | None) -> list[tuple[str, ParamValue]]:
    if params is None:
        return []
    if isinstance(params, Mapping):
        return list(params.items())
    return list(params)


def encode_params(params: Params | None) -> str:
    """``name=value&…`` percent-encoded, in the given order (no signing)."""
    return "&".join(f"{percent_encode(name)}={percent_encode(format_value(value))}" for name, value in _items(params))


def _append(encoded: str, name: str, encoded_value: str) -> str:
    pair = f"{name}={encoded_value}"
    return f"{encoded}&{pair}" if encoded else pair


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """Exactly what to put on the wire. Do not let the HTTP library re-encode it."""

    query: str
    """Percent-encoded query string without the leading ``?`` (may be empty)."""
    body: bytes
    """Percent-encoded form body (empty when the request has no body)."""
    signature: str
    """The signature text (not URL-encoded); for logs and tests."""
    signed_payload: bytes
    """The bytes that were signed: query (without signature) + body (without signature)."""
    api_key: str = field(repr=False)

    def url(self, base_url: str, path: str) -> str:
        """Full, already-encoded URL: ``base_url + path [+ '?' + query]``."""
        url = base_url.rstrip("/") + path
        return f"{url}?{self.query}" if self.query else url

    @property
    def headers(self) -> dict[str, str]:
        headers = {API_KEY_HEADER: self.api_key}
        if self.body:
            headers["Content-Type"] = FORM_CONTENT_TYPE
        return headers


def sign_rest(
    signer: Signer,
    query: Params | None = None,
    body: Params | None = None,
    *,
    timestamp_ms: int | None = None,
    recv_window_ms: int | Decimal | None = None,
) -> SignedRequest:
    """Sign a REST request.

    Parameter order is preserved. ``recvWindow`` then ``timestamp`` are appended when
    given, and then ``signature`` — all to the body when ``body`` is not None (even if
    empty), else to the query string. The signature is computed over
    ``encoded_query + encoded_body`` (no separator) *before* it is appended.
    """
    query_items = _items(query)
    body_items = _items(body)
    target = body_items if body is not None else query_items
    if recv_window_ms is not None:
        target.append(("recvWindow", recv_window_ms))
    if timestamp_ms is not None:
        target.append(("timestamp", timestamp_ms))
    if any(name == "signature" for name, _ in (*query_items, *body_items)):
        raise ValueError("'signature' must not be passed as a parameter")

    encoded_query = encode_params(query_items)
    encoded_body = encode_params(body_items)
    payload = (encoded_query + encoded_body).encode("ascii")
    signature = signer.sign(payload)
    encoded_signature = percent_encode(signature)
    if body is not None:
        encoded_body = _append(encoded_body, "signature", encoded_signature)
    else:
        encoded_query = _append(encoded_query, "signature", encoded_signature)
    return SignedRequest(
        query=encoded_query,
        body=encoded_body.encode("ascii"),
        signature=signature,
        signed_payload=payload,
        api_key=signer.api_key,
    )


def ws_signature_payload(params: Mapping[str, ParamValue]) -> str:
    """WS API payload: all params but ``signature``, sorted by name, not percent-encoded."""
    return "&".join(f"{name}={format_value(params[name])}" for name in sorted(params) if name != "signature")


def sign_ws_params(
    signer: Signer,
    params: Mapping[str, ParamValue],
    *,
    timestamp_ms: int | None = None,
    recv_window_ms: int | Decimal | None = None,
) -> dict[str, ParamValue]:
    """Return a new ``params`` object for a WS API request with ``apiKey`` (if absent),
    ``timestamp``/``recvWindow`` (if given) and ``signature`` filled in."""
    out: dict[str, ParamValue] = {name: value for name, value in params.items() if name != "signature"}
    out.setdefault("apiKey", signer.api_key)
    if recv_window_ms is not None:
        out["recvWindow"] = recv_window_ms
    if timestamp_ms is not None:
        out["timestamp"] = timestamp_ms
    out["signature"] = signer.sign(ws_signature_payload(out).encode("utf-8"))
    return out
