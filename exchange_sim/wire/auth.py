"""Server-side request authentication for the simulator, as Binance does it.

Pure code: no sockets, no clocks (``now_ms`` is an argument). The REST and WS API
shells call `verify_rest` / `verify_ws` and turn an `AuthError` into
``{"code": …, "msg": …}`` with its ``http_status`` (REST status or WS ``status``).

Check order (reference §12.1): API key (-2014/-2015, HTTP 401) → signature over the
raw bytes (-1022) → ``recvWindow`` ≤ 60000 (-1102) → timestamp window (-1021).
Missing ``signature``/``timestamp`` or malformed values are -1102; a parameter
repeated inside the query string or inside the body is -1101.

REST signature payload: the raw query bytes immediately followed by the raw body
bytes, each with its ``signature=…`` pair removed. HMAC: lowercase/uppercase hex,
compared in constant time. Ed25519: base64 (percent-decoded first).

WS API payload: params except ``signature``, sorted by name, ``name=value`` joined
by ``&``, no percent-encoding. Parse non-integer JSON numbers as `Decimal` (e.g.
``json.loads(text, parse_float=Decimal)``) so ``52000.00`` keeps its text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Final
from urllib.parse import unquote_to_bytes

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "API_KEY_HEADER",
    "MAX_RECV_WINDOW_MS",
    "ApiKeyEntry",
    "AuthError",
    "AuthenticatedRequest",
    "KeyRegistry",
    "KeyType",
    "Security",
    "check_timestamp",
    "parse_params",
    "verify_rest",
    "verify_ws",
    "ws_signature_payload",
]

API_KEY_HEADER: Final = "X-MBX-APIKEY"
MAX_RECV_WINDOW_MS: Final = 60_000
DEFAULT_RECV_WINDOW_US: Final = 5_000_000
AHEAD_LIMIT_US: Final = 1_000_000
MICROSECOND_THRESHOLD: Final = 10**14
"""Timestamps at or above this are microseconds (reference §3.5)."""

# Binance keys are 64 alphanumerics; accept any 1–128 alphanumerics so tests may use short ones.
_API_KEY_RE: Final = re.compile(r"[A-Za-z0-9]{1,128}")
_TIMESTAMP_RE: Final = re.compile(r"[0-9]{1,20}")
_RECV_WINDOW_RE: Final = re.compile(r"[0-9]{1,20}(\.[0-9]{1,3})?")

MSG_BAD_KEY_FORMAT: Final = "API-key format invalid."
MSG_REJECTED_KEY: Final = "Invalid API-key, IP, or permissions for action."
MSG_BAD_SIGNATURE: Final = "Signature for this request is not valid."
MSG_AHEAD: Final = "Timestamp for this request was 1000ms ahead of the server's time."
MSG_OUTSIDE_WINDOW: Final = "Timestamp for this request is outside of the recvWindow."
MSG_RECV_WINDOW_TOO_BIG: Final = f"'recvWindow' contains unexpected value. Cannot be greater than {MAX_RECV_WINDOW_MS}."
MSG_DUPLICATE: Final = "Duplicate values for a parameter detected."


def _mandatory(name: str) -> str:
    return f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."


class KeyType(StrEnum):
    HMAC_SHA256 = "HMAC_SHA256"
    ED25519 = "ED25519"


class Security(StrEnum):
    """Endpoint security type (reference §3.1) — the key must be allowed to do it."""

    TRADE = "TRADE"
    USER_DATA = "USER_DATA"
    USER_STREAM = "USER_STREAM"


class AuthError(Exception):
    """A rejected request: HTTP status (or WS ``status``), Binance code and message."""

    def __init__(self, http_status: int, code: int, msg: str) -> None:
        super().__init__(http_status, code, msg)
        self.http_status = http_status
        self.code = code
        self.msg = msg

    def to_json(self) -> dict[str, int | str]:
        return {"code": self.code, "msg": self.msg}

    def __str__(self) -> str:
        return f"HTTP {self.http_status} {self.code}: {self.msg}"


def _fingerprint(api_key: str) -> str:
    return "sha256:" + hashlib.sha256(api_key.encode("utf-8")).hexdigest()[:8]


class ApiKeyEntry:
    """One configured key. Holds the HMAC secret or the Ed25519 public key; never shows them."""

    __slots__ = ("_hmac_secret", "_public_key", "account_id", "api_key", "key_type", "trading_enabled")

    def __init__(
        self,
        api_key: str,
        account_id: int,
        *,
        hmac_secret: bytes | None = None,
        public_key: Ed25519PublicKey | None = None,
        trading_enabled: bool = True,
    ) -> None:
        if not _API_KEY_RE.fullmatch(api_key):
            raise ValueError("API key must be 1-128 ASCII letters/digits")
        if (hmac_secret is None) == (public_key is None):
            raise ValueError("give exactly one of hmac_secret or public_key")
        if hmac_secret is not None and not hmac_secret:
            raise ValueError("HMAC secret must not be empty")
        self.api_key: Final = api_key
        self.account_id: Final = account_id
        self.key_type: Final = KeyType.HMAC_SHA256 if hmac_secret is not None else KeyType.ED25519
        self.trading_enabled: Final = trading_enabled
        self._hmac_secret = hmac_secret
        self._public_key = public_key

    def allows(self, security: Security) -> bool:
        return security is not Security.TRADE or self.trading_enabled

    def verify(self, payload: bytes, signature: str) -> bool:
        """True iff `signature` (hex for HMAC, base64 for Ed25519) is valid for `payload`."""
        if self._hmac_secret is not None:
            expected = hmac.new(self._hmac_secret, payload, hashlib.sha256).hexdigest().encode("ascii")
            return hmac.compare_digest(expected, signature.lower().encode("utf-8"))
        assert self._public_key is not None
        try:
            raw = base64.b64decode(signature.encode("ascii"), validate=True)
        except (UnicodeEncodeError, binascii.Error, ValueError):
            return False
        try:
            self._public_key.verify(raw, payload)
        except InvalidSignature:
            return False
        return True

    def __repr__(self) -> str:
        return (
            f"ApiKeyEntry(key_id={_fingerprint(self.api_key)!r}, account_id={self.account_id!r}, "
            f"key_type={self.key_type.value!r}, trading_enabled={self.trading_enabled!r})"
        )

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("ApiKeyEntry holds a secret and cannot be pickled")


def _load_public_key(public_key: Ed25519PublicKey | bytes | str) -> Ed25519PublicKey:
    if isinstance(public_key, Ed25519PublicKey):
        return public_key
    data = public_key.encode("ascii") if isinstance(public_key, str) else public_key
    if len(data) == 32:
        return Ed25519PublicKey.from_public_bytes(data)
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"public key is {type(key).__name__}, expected Ed25519")
    return key


class KeyRegistry:
    """api key → (HMAC secret or Ed25519 public key, account id)."""

    __slots__ = ("_entries",)

    def __init__(self, entries: Iterable[ApiKeyEntry] = ()) -> None:
        self._entries: dict[str, ApiKeyEntry] = {}
        for entry in entries:
            self.add(entry)

    def add(self, entry: ApiKeyEntry) -> ApiKeyEntry:
        if entry.api_key in self._entries:
            raise ValueError(f"duplicate API key {_fingerprint(entry.api_key)}")
        self._entries[entry.api_key] = entry
        return entry

    def add_hmac(
        self, api_key: str, secret: str | bytes, account_id: int, *, trading_enabled: bool = True
    ) -> ApiKeyEntry:
        raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        return self.add(ApiKeyEntry(api_key, account_id, hmac_secret=raw, trading_enabled=trading_enabled))

    def add_ed25519(
        self,
        api_key: str,
        public_key: Ed25519PublicKey | bytes | str,
        account_id: int,
        *,
        trading_enabled: bool = True,
    ) -> ApiKeyEntry:
        """`public_key`: an Ed25519PublicKey, a PEM (SubjectPublicKeyInfo), or 32 raw bytes."""
        key = _load_public_key(public_key)
        return self.add(ApiKeyEntry(api_key, account_id, public_key=key, trading_enabled=trading_enabled))

    def remove(self, api_key: str) -> None:
        self._entries.pop(api_key, None)

    def get(self, api_key: str) -> ApiKeyEntry | None:
        return self._entries.get(api_key)

    def lookup(self, api_key: str | None) -> ApiKeyEntry:
        """The entry for a presented key; -2014 if missing/garbled, -2015 if unknown (both HTTP 401)."""
        if api_key is None or not _API_KEY_RE.fullmatch(api_key):
            raise AuthError(401, -2014, MSG_BAD_KEY_FORMAT)
        entry = self._entries.get(api_key)
        if entry is None:
            raise AuthError(401, -2015, MSG_REJECTED_KEY)
        return entry

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, api_key: object) -> bool:
        return api_key in self._entries

    def __repr__(self) -> str:
        return f"KeyRegistry({len(self._entries)} keys)"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class AuthenticatedRequest:
    """A request that passed key, signature, recvWindow and timestamp checks."""

    account_id: int
    key_type: KeyType
    timestamp_us: int
    """Request ``timestamp`` normalised to microseconds."""
    recv_window_us: int
    params: Mapping[str, str]
    """Decoded parameters without ``signature`` (REST: query wins over body)."""
    api_key: str = field(repr=False)

    @property
    def timestamp_ms(self) -> int:
        return self.timestamp_us // 1000

    def recheck(self, now_ms: float) -> None:
        """The later recvWindow checks (during processing, just before the engine): -1021."""
        check_timestamp(self.timestamp_us, self.recv_window_us, now_ms)


# --------------------------------------------------------------------------- timing


def _parse_timestamp_us(value: str | None) -> int:
    if value is None or not _TIMESTAMP_RE.fullmatch(value):
        raise AuthError(400, -1102, _mandatory("timestamp"))
    ts = int(value)
    return ts if ts >= MICROSECOND_THRESHOLD else ts * 1000


def _parse_recv_window_us(value: str | None) -> int:
    if value is None:
        return DEFAULT_RECV_WINDOW_US
    if not _RECV_WINDOW_RE.fullmatch(value):
        raise AuthError(400, -1102, _mandatory("recvWindow"))
    window = Decimal(value)
    if window > MAX_RECV_WINDOW_MS:
        raise AuthError(400, -1102, MSG_RECV_WINDOW_TOO_BIG)
    return int(window * 1000)


def check_timestamp(timestamp_us: int, recv_window_us: int, now_ms: float) -> None:
    """Raise -1021 if the request is ≥1000 ms ahead of `now_ms` or older than its recvWindow."""
    now_us = round(now_ms * 1000)
    if timestamp_us >= now_us + AHEAD_LIMIT_US:
        raise AuthError(400, -1021, MSG_AHEAD)
    if now_us - timestamp_us > recv_window_us:
        raise AuthError(400, -1021, MSG_OUTSIDE_WINDOW)


# --------------------------------------------------------------------------- REST parsing


def _as_bytes(raw: bytes | str) -> bytes:
    return raw.encode("utf-8") if isinstance(raw, str) else raw


def _decode(component: bytes, *, plus_is_space: bool = True) -> str:
    if plus_is_space:
        component = component.replace(b"+", b" ")
    try:
        return unquote_to_bytes(component).decode("utf-8")
    except UnicodeDecodeError:
        raise AuthError(400, -1100, "Illegal characters found in a parameter.") from None


def _parse_part(raw: bytes) -> tuple[dict[str, str], list[str], bytes]:
    """(params without signature, signature values, raw bytes with the signature pairs removed).

    Everything but the ``signature=…`` segments stays byte for byte (empty segments too).
    """
    params: dict[str, str] = {}
    signatures: list[str] = []
    kept: list[bytes] = []
    for segment in raw.split(b"&") if raw else []:
        raw_name, _, raw_value = segment.partition(b"=")
        name = _decode(raw_name)
        if name == "signature":
            # A raw '+' in base64 stays '+': only %XX escapes are decoded here.
            signatures.append(_decode(raw_value, plus_is_space=False))
            continue
        kept.append(segment)
        if not segment:
            continue
        if name in params:
            raise AuthError(400, -1101, MSG_DUPLICATE)
        params[name] = _decode(raw_value)
    return params, signatures, b"&".join(kept)


def parse_params(raw_query: bytes | str, raw_body: bytes = b"") -> dict[str, str]:
    """Decode query string and form body into one dict (query value wins; -1101 on repeats)."""
    query_params, query_sigs, _ = _parse_part(_as_bytes(raw_query))
    body_params, body_sigs, _ = _parse_part(raw_body)
    merged = {**body_params, **query_params}
    signatures = query_sigs or body_sigs
    if signatures:
        merged["signature"] = signatures[0]
    return merged


def _require_signature(signatures: list[str]) -> str:
    if len(signatures) > 1:
        raise AuthError(400, -1101, MSG_DUPLICATE)
    if not signatures or not signatures[0]:
        raise AuthError(400, -1102, _mandatory("signature"))
    return signatures[0]


def verify_rest(
    registry: KeyRegistry,
    *,
    api_key: str | None,
    raw_query: bytes | str,
    raw_body: bytes = b"",
    now_ms: float,
    security: Security = Security.USER_DATA,
) -> AuthenticatedRequest:
    """Authenticate a SIGNED REST request.

    `api_key` is the ``X-MBX-APIKEY`` header (None if absent); `raw_query` is the
    still-percent-encoded query string without ``?``; `raw_body` the raw form body
    (pass ``b""`` unless the content type is ``application/x-www-form-urlencoded``).
    """
    entry = registry.lookup(api_key)
    if not entry.allows(security):
        raise AuthError(401, -2015, MSG_REJECTED_KEY)

    query_params, query_sigs, query_payload = _parse_part(_as_bytes(raw_query))
    body_params, body_sigs, body_payload = _parse_part(raw_body)
    # The query-string value wins when a parameter is in both (reference §2).
    signature = _require_signature(query_sigs or body_sigs)
    if not entry.verify(query_payload + body_payload, signature):
        raise AuthError(400, -1022, MSG_BAD_SIGNATURE)

    params = {**body_params, **query_params}
    recv_window_us = _parse_recv_window_us(params.get("recvWindow"))
    timestamp_us = _parse_timestamp_us(params.get("timestamp"))
    check_timestamp(timestamp_us, recv_window_us, now_ms)
    return AuthenticatedRequest(
        account_id=entry.account_id,
        key_type=entry.key_type,
        timestamp_us=timestamp_us,
        recv_window_us=recv_window_us,
        params=params,
        api_key=entry.api_key,
    )


# --------------------------------------------------------------------------- WS API


def _ws_text(value: object) -> str:
    """A JSON param value as it appears in the WS signature payload."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return repr(value)
    # Arrays/objects: compact JSON, as the client renders ``symbols=["A","B"]``.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def ws_signature_payload(params: Mapping[str, object]) -> str:
    """All params except ``signature``, sorted by name, no percent-encoding."""
    return "&".join(f"{name}={_ws_text(params[name])}" for name in sorted(params) if name != "signature")


def _ws_param(params: Mapping[str, object], name: str) -> str | None:
    value = params.get(name)
    return None if value is None else _ws_text(value)


def verify_ws(
    registry: KeyRegistry,
    params: Mapping[str, object],
    *,
    now_ms: float,
    security: Security = Security.USER_DATA,
    session_api_key: str | None = None,
    require_ed25519: bool = False,
) -> AuthenticatedRequest:
    """Authenticate a WS API request from its ``params`` object.

    * With ``signature`` in params: ``apiKey`` + §3.3 signature are checked.
    * Without it but with `session_api_key` (a connection after ``session.logon``):
      the session key is re-looked-up (revoked → -2015 401) and only the timestamp is
      checked. An explicit ``apiKey`` that differs from the session key needs a signature.
    * ``session.logon``: pass ``require_ed25519=True`` (other key types → -2015, 401;
      the docs only say "Only Ed25519 keys are supported").
    """
    signature_value = params.get("signature")
    api_key_value = params.get("apiKey")
    api_key = api_key_value if isinstance(api_key_value, str) else None  # non-str → -2014
    signed = signature_value is not None or require_ed25519 or session_api_key is None
    if not signed and api_key is not None and api_key != session_api_key:
        signed = True

    entry = registry.lookup(api_key if signed else session_api_key)
    if require_ed25519 and entry.key_type is not KeyType.ED25519:
        raise AuthError(401, -2015, MSG_REJECTED_KEY)
    if not entry.allows(security):
        raise AuthError(401, -2015, MSG_REJECTED_KEY)

    if signed:
        if not isinstance(signature_value, str) or not signature_value:
            raise AuthError(400, -1102, _mandatory("signature"))
        payload = ws_signature_payload(params).encode("utf-8")
        if not entry.verify(payload, signature_value):
            raise AuthError(400, -1022, MSG_BAD_SIGNATURE)

    recv_window_us = _parse_recv_window_us(_ws_param(params, "recvWindow"))
    timestamp_us = _parse_timestamp_us(_ws_param(params, "timestamp"))
    check_timestamp(timestamp_us, recv_window_us, now_ms)
    return AuthenticatedRequest(
        account_id=entry.account_id,
        key_type=entry.key_type,
        timestamp_us=timestamp_us,
        recv_window_us=recv_window_us,
        params={name: _ws_text(value) for name, value in params.items() if name != "signature"},
        api_key=entry.api_key,
    )
