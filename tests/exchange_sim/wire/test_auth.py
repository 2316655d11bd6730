"""Server-side authentication: raw-byte vectors, error codes and their order, timing, WS API,
and agreement with the provider's client-side signer (client-signed verifies, tampered fails)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange_sim.wire.auth import (
    MAX_RECV_WINDOW_MS,
    AuthError,
    KeyRegistry,
    KeyType,
    Security,
    check_timestamp,
    parse_params,
    verify_rest,
    verify_ws,
    ws_signature_payload,
)
from provider.binance.signing import Ed25519Signer, HmacSigner, Signer, sign_rest, sign_ws_params

SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
ED_KEY = "EdKey0001"
NO_TRADE_KEY = "ReadOnly01"
TS = 1499827319559
ED_PRIVATE = Ed25519PrivateKey.generate()

Q1 = (
    b"symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
    b"&signature=c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
)
Q2 = b"symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC"
B2 = (
    b"quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
    b"&signature=0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"
)
Q3 = (
    b"symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96&side=BUY&type=LIMIT&timeInForce=GTC"
    b"&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
    b"&signature=e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3"
)


@pytest.fixture
def registry() -> KeyRegistry:
    reg = KeyRegistry()
    reg.add_hmac(API_KEY, SECRET, account_id=1)
    reg.add_ed25519(ED_KEY, Ed25519Signer(ED_KEY, ED_PRIVATE).public_key_pem(), account_id=2)
    reg.add_hmac(NO_TRADE_KEY, "s3cr3t", account_id=3, trading_enabled=False)
    return reg


def rest(
    registry: KeyRegistry,
    query: bytes | str,
    body: bytes = b"",
    *,
    api_key: str | None = API_KEY,
    now_ms: float = TS,
    security: Security = Security.TRADE,
) -> Mapping[str, str]:
    return verify_rest(
        registry, api_key=api_key, raw_query=query, raw_body=body, now_ms=now_ms, security=security
    ).params


def rejected(call: object, *args: object, **kwargs: object) -> tuple[int, int, str]:
    assert callable(call)
    with pytest.raises(AuthError) as info:
        call(*args, **kwargs)
    return info.value.http_status, info.value.code, info.value.msg


# --------------------------------------------------------------------------- documented vectors


@pytest.mark.parametrize(("query", "body"), [(Q1, b""), (Q2, B2), (Q3, b"")], ids=["query", "query+body", "unicode"])
def test_documented_vectors_verify(registry: KeyRegistry, query: bytes, body: bytes) -> None:
    params = rest(registry, query, body)
    assert "signature" not in params
    assert params["timestamp"] == "1499827319559"
    assert params["symbol"] in {"LTCBTC", "１２３４５６"}


def test_result_carries_account_and_timing(registry: KeyRegistry) -> None:
    result = verify_rest(registry, api_key=API_KEY, raw_query=Q2, raw_body=B2, now_ms=TS + 10, security=Security.TRADE)
    assert (result.account_id, result.key_type) == (1, KeyType.HMAC_SHA256)
    assert (result.timestamp_ms, result.timestamp_us, result.recv_window_us) == (TS, TS * 1000, 5_000_000)
    assert dict(result.params) == {
        "symbol": "LTCBTC",
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": "1",
        "price": "0.1",
        "recvWindow": "5000",
        "timestamp": "1499827319559",
    }
    assert API_KEY not in repr(result)


def test_hmac_signature_is_case_insensitive(registry: KeyRegistry) -> None:
    head, sig = Q1.split(b"&signature=")
    assert rest(registry, head + b"&signature=" + sig.upper())["side"] == "BUY"


def test_signature_may_sit_anywhere_and_str_query_is_accepted(registry: KeyRegistry) -> None:
    head, sig = Q1.split(b"&signature=")
    assert rest(registry, b"signature=" + sig + b"&" + head)["side"] == "BUY"
    assert rest(registry, Q1.decode())["side"] == "BUY"


@pytest.mark.parametrize(
    ("query", "body"),
    [
        (Q1.replace(b"price=0.1", b"price=0.2"), b""),  # changed value
        (Q1.replace(b"symbol=LTCBTC&side=BUY", b"side=BUY&symbol=LTCBTC"), b""),  # reordered
        (Q1.replace(b"LTCBTC", b"%4CTCBTC"), b""),  # same decoded value, different bytes
        (Q1 + b"&extra=1", b""),  # added parameter
        (Q2 + b"&", B2),  # separator between query and body is not part of the payload
        (Q1.replace(b"&side", b"&&side"), b""),  # empty segment
        (Q3.replace(b"%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96", "１２３４５６".encode()), b""),
        (Q1[:-1] + b"0", b""),  # wrong signature
        (Q1.split(b"&signature=")[0] + b"&signature=not-hex", b""),
        (Q1.split(b"&signature=")[0] + "&signature=ü".encode(), b""),
    ],
)
def test_tampered_requests_fail_with_1022(registry: KeyRegistry, query: bytes, body: bytes) -> None:
    assert rejected(rest, registry, query, body) == (400, -1022, "Signature for this request is not valid.")


# --------------------------------------------------------------------------- key errors


@pytest.mark.parametrize(
    ("api_key", "code", "msg"),
    [
        (None, -2014, "API-key format invalid."),
        ("", -2014, "API-key format invalid."),
        ("has space", -2014, "API-key format invalid."),
        ("x" * 129, -2014, "API-key format invalid."),
        ("Unknown0001", -2015, "Invalid API-key, IP, or permissions for action."),
    ],
)
def test_bad_api_keys_are_401(registry: KeyRegistry, api_key: str | None, code: int, msg: str) -> None:
    assert rejected(rest, registry, Q1, api_key=api_key) == (401, code, msg)


def test_key_without_trading_permission(registry: KeyRegistry) -> None:
    signer = HmacSigner(NO_TRADE_KEY, "s3cr3t")
    req = sign_rest(signer, [("symbol", "BTCUSDT")], timestamp_ms=TS)
    assert rest(registry, req.query, api_key=NO_TRADE_KEY, security=Security.USER_DATA)["symbol"] == "BTCUSDT"
    assert rejected(rest, registry, req.query, api_key=NO_TRADE_KEY, security=Security.TRADE) == (
        401,
        -2015,
        "Invalid API-key, IP, or permissions for action.",
    )


def test_key_is_checked_before_the_signature(registry: KeyRegistry) -> None:
    assert rejected(rest, registry, b"garbage", api_key="Unknown0001")[1] == -2015


# --------------------------------------------------------------------------- parameter errors


def test_missing_signature_is_1102(registry: KeyRegistry) -> None:
    assert rejected(rest, registry, Q1.split(b"&signature=")[0]) == (
        400,
        -1102,
        "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.",
    )


def test_duplicate_parameters_are_1101(registry: KeyRegistry) -> None:
    assert rejected(rest, registry, b"a=1&a=2&signature=x")[1] == -1101
    assert rejected(rest, registry, Q1 + b"&signature=abc")[1] == -1101


def _signed(query: str, signer: Signer | None = None) -> bytes:
    signer = signer or HmacSigner(API_KEY, SECRET)
    return f"{query}&signature={signer.sign(query.encode())}".encode()


def test_missing_or_malformed_timestamp_is_1102(registry: KeyRegistry) -> None:
    msg = "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."
    assert rejected(rest, registry, _signed("symbol=BTCUSDT")) == (400, -1102, msg)
    assert rejected(rest, registry, _signed("timestamp=12a")) == (400, -1102, msg)
    assert rejected(rest, registry, _signed("timestamp=-5")) == (400, -1102, msg)


@pytest.mark.parametrize(
    ("recv_window", "error"),
    [
        ("60000", None),
        ("60000.000", None),
        ("60000.001", (400, -1102, "'recvWindow' contains unexpected value. Cannot be greater than 60000.")),
        ("60001", (400, -1102, "'recvWindow' contains unexpected value. Cannot be greater than 60000.")),
        ("5000.1234", (400, -1102, "Mandatory parameter 'recvWindow' was not sent, was empty/null, or malformed.")),
        ("abc", (400, -1102, "Mandatory parameter 'recvWindow' was not sent, was empty/null, or malformed.")),
    ],
)
def test_recv_window_bounds(registry: KeyRegistry, recv_window: str, error: tuple[int, int, str] | None) -> None:
    query = _signed(f"recvWindow={recv_window}&timestamp={TS}")
    if error is None:
        assert rest(registry, query)["recvWindow"] == recv_window
    else:
        assert rejected(rest, registry, query) == error
    assert MAX_RECV_WINDOW_MS == 60_000


def test_check_order_signature_then_recv_window_then_timestamp(registry: KeyRegistry) -> None:
    stale_bad_window = f"recvWindow=70000&timestamp={TS - 90_000}"
    # bad signature wins over a bad recvWindow and a stale timestamp
    assert rejected(rest, registry, stale_bad_window.encode() + b"&signature=00")[1] == -1022
    # recvWindow wins over the stale timestamp
    assert rejected(rest, registry, _signed(stale_bad_window))[1] == -1102


# --------------------------------------------------------------------------- timing

AHEAD = (400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")
OUTSIDE = (400, -1021, "Timestamp for this request is outside of the recvWindow.")


@pytest.mark.parametrize(
    ("timestamp", "recv_window", "now_ms", "error"),
    [
        (TS, None, TS, None),
        (TS + 999, None, TS, None),  # up to 999 ms ahead is fine
        (TS + 1000, None, TS, AHEAD),
        (TS, None, TS + 5000, None),  # default recvWindow 5000, inclusive
        (TS, None, TS + 5001, OUTSIDE),
        (TS, "100", TS + 100, None),
        (TS, "100", TS + 101, OUTSIDE),
        (TS, "60000", TS + 60_000, None),
        (TS, "0", TS, None),
        (TS, "0", TS + 1, OUTSIDE),
        (TS * 1000 + 999_999, None, TS, None),  # microseconds (>= 10^14)
        (TS * 1000 + 1_000_000, None, TS, AHEAD),
        (TS * 1000, "0.5", TS + 0.5, None),  # recvWindow with µs precision
        (TS * 1000, "0.5", TS + 0.501, OUTSIDE),
        (TS * 1000, "6000.346", TS + 6000.346, None),
        (TS * 1000, "6000.346", TS + 6000.347, OUTSIDE),
        (1483228799999, None, TS, OUTSIDE),  # before 2017
        (10**14 - 1, None, TS, AHEAD),  # largest ms value: far in the future
    ],
)
def test_timestamp_window(
    registry: KeyRegistry, timestamp: int, recv_window: str | None, now_ms: float, error: tuple[int, int, str] | None
) -> None:
    query = f"recvWindow={recv_window}&timestamp={timestamp}" if recv_window else f"timestamp={timestamp}"
    if error is None:
        assert rest(registry, _signed(query), now_ms=now_ms)["timestamp"] == str(timestamp)
    else:
        assert rejected(rest, registry, _signed(query), now_ms=now_ms) == error


def test_recheck_before_the_engine(registry: KeyRegistry) -> None:
    result = verify_rest(registry, api_key=API_KEY, raw_query=Q1, now_ms=TS + 4000, security=Security.TRADE)
    result.recheck(TS + 5000)
    with pytest.raises(AuthError) as info:
        result.recheck(TS + 5001)
    assert (info.value.code, info.value.msg) == (-1021, OUTSIDE[2])


def test_check_timestamp_directly() -> None:
    check_timestamp(TS * 1000, 5_000_000, TS + 5000)
    with pytest.raises(AuthError):
        check_timestamp(TS * 1000, 5_000_000, TS + 5000.001)


# --------------------------------------------------------------------------- Ed25519 over REST


def test_ed25519_rest_signature_is_percent_decoded(registry: KeyRegistry) -> None:
    signer = Ed25519Signer(ED_KEY, ED_PRIVATE)
    req = sign_rest(signer, [("symbol", "BTCUSDT")], timestamp_ms=TS)
    result = verify_rest(registry, api_key=ED_KEY, raw_query=req.query, now_ms=TS, security=Security.TRADE)
    assert (result.account_id, result.key_type) == (2, KeyType.ED25519)
    # Unencoded base64 (a sloppy client) is also accepted: '+' is not turned into a space.
    sloppy = req.signed_payload + b"&signature=" + req.signature.encode()
    assert rest(registry, sloppy, api_key=ED_KEY)["symbol"] == "BTCUSDT"
    # Ed25519 signatures are case-sensitive and must be valid base64.
    flipped = req.signed_payload + b"&signature=" + req.signature.swapcase().encode()
    assert rejected(rest, registry, flipped, api_key=ED_KEY)[1] == -1022
    assert rejected(rest, registry, req.signed_payload + b"&signature=%%%", api_key=ED_KEY)[1] == -1022


def test_hmac_signature_for_an_ed25519_key_fails(registry: KeyRegistry) -> None:
    req = sign_rest(HmacSigner(ED_KEY, SECRET), [("symbol", "BTCUSDT")], timestamp_ms=TS)
    assert rejected(rest, registry, req.query, api_key=ED_KEY)[1] == -1022


# --------------------------------------------------------------------------- client ↔ server agreement

SIGNERS = [HmacSigner(API_KEY, SECRET), Ed25519Signer(ED_KEY, ED_PRIVATE)]

param_names = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=8)
param_values = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
param_lists = st.dictionaries(
    param_names.filter(lambda n: n not in {"signature", "timestamp", "recvWindow"}), param_values, max_size=5
)


@settings(max_examples=150, deadline=None)
@given(
    query=param_lists,
    body=st.none() | param_lists,
    signer_index=st.sampled_from([0, 1]),
    flip=st.integers(min_value=0, max_value=10_000),
)
def test_client_signed_requests_verify_and_tampered_ones_fail(
    query: dict[str, str], body: dict[str, str] | None, signer_index: int, flip: int
) -> None:
    registry = KeyRegistry()
    registry.add_hmac(API_KEY, SECRET, 1)
    registry.add_ed25519(ED_KEY, ED_PRIVATE.public_key(), 2)
    signer = SIGNERS[signer_index]
    body_params = None if body is None else {k: v for k, v in body.items() if k not in query}
    req = sign_rest(signer, query, body_params, timestamp_ms=TS, recv_window_ms=Decimal("5000.5"))

    result = verify_rest(registry, api_key=signer.api_key, raw_query=req.query, raw_body=req.body, now_ms=TS)
    expected = {**(body_params or {}), **query, "recvWindow": "5000.5", "timestamp": str(TS)}
    assert dict(result.params) == expected
    assert result.recv_window_us == 5_000_500

    # Flip one byte of what was signed (not the signature): the server must refuse it.
    payload_len = len(req.signed_payload)
    position = flip % payload_len
    wire = bytearray(req.query.encode() + b"\n" + req.body)
    wire_pos = position if position < len(req.query) else position + 1
    original = wire[wire_pos]
    wire[wire_pos] = ord("A") if original != ord("A") else ord("B")
    tampered_query, _, tampered_body = bytes(wire).partition(b"\n")
    with pytest.raises(AuthError) as info:
        verify_rest(registry, api_key=signer.api_key, raw_query=tampered_query, raw_body=tampered_body, now_ms=TS)
    assert info.value.code in {-1022, -1101, -1100}


@pytest.mark.parametrize("signer", SIGNERS, ids=["hmac", "ed25519"])
def test_client_signed_ws_params_verify(registry: KeyRegistry, signer: Signer) -> None:
    params = sign_ws_params(
        signer,
        {"symbol": "这是测试币456", "quantity": Decimal("0.01000000"), "newOrderRespType": "ACK", "flag": True},
        timestamp_ms=TS,
        recv_window_ms=100,
    )
    result = verify_ws(registry, params, now_ms=TS + 100, security=Security.TRADE)
    assert result.params["quantity"] == "0.01000000"
    assert result.params["flag"] == "true"
    tampered = {**params, "quantity": Decimal("0.02")}
    assert rejected(verify_ws, registry, tampered, now_ms=TS)[1] == -1022


# --------------------------------------------------------------------------- WS API

WS_VECTOR: dict[str, object] = {
    "apiKey": API_KEY,
    "price": Decimal("52000.00"),
    "quantity": "0.01000000",
    "recvWindow": 100,
    "side": "SELL",
    "symbol": "BTCUSDT",
    "timeInForce": "GTC",
    "timestamp": 1645423376532,
    "type": "LIMIT",
    "signature": "aa1b5712c094bc4e57c05a1a5c1fd8d88dcd628338ea863fec7b88e59fe2db24",
}


def test_ws_vector_verifies(registry: KeyRegistry) -> None:
    result = verify_ws(registry, WS_VECTOR, now_ms=1645423376532 + 50, security=Security.TRADE)
    assert result.account_id == 1
    assert result.params["price"] == "52000.00"
    assert ws_signature_payload(WS_VECTOR).startswith("apiKey=" + API_KEY + "&price=52000.00&")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"price": Decimal("52000.0")}, (400, -1022, "Signature for this request is not valid.")),
        ({"apiKey": None}, (401, -2014, "API-key format invalid.")),
        ({"apiKey": 42}, (401, -2014, "API-key format invalid.")),
        ({"apiKey": "Unknown0001"}, (401, -2015, "Invalid API-key, IP, or permissions for action.")),
        (
            {"signature": None},
            (400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed."),
        ),
        ({"recvWindow": 60001}, (400, -1022, "Signature for this request is not valid.")),
    ],
)
def test_ws_errors(registry: KeyRegistry, change: dict[str, object], expected: tuple[int, int, str]) -> None:
    params = {k: v for k, v in {**WS_VECTOR, **change}.items() if v is not None}
    assert rejected(verify_ws, registry, params, now_ms=1645423376532) == expected


def test_ws_recv_window_and_timestamp_after_signature(registry: KeyRegistry) -> None:
    signer = HmacSigner(API_KEY, SECRET)
    too_big = sign_ws_params(signer, {}, timestamp_ms=TS, recv_window_ms=60001)
    assert rejected(verify_ws, registry, too_big, now_ms=TS)[1:] == (
        -1102,
        "'recvWindow' contains unexpected value. Cannot be greater than 60000.",
    )
    stale = sign_ws_params(signer, {}, timestamp_ms=TS)
    assert rejected(verify_ws, registry, stale, now_ms=TS + 5001) == OUTSIDE
    no_ts = sign_ws_params(signer, {})
    assert rejected(verify_ws, registry, no_ts, now_ms=TS)[1] == -1102


def test_session_logon_needs_ed25519(registry: KeyRegistry) -> None:
    hmac_logon = sign_ws_params(HmacSigner(API_KEY, SECRET), {}, timestamp_ms=TS)
    assert rejected(verify_ws, registry, hmac_logon, now_ms=TS, require_ed25519=True) == (
        401,
        -2015,
        "Invalid API-key, IP, or permissions for action.",
    )
    ed_logon = sign_ws_params(Ed25519Signer(ED_KEY, ED_PRIVATE), {}, timestamp_ms=TS)
    result = verify_ws(registry, ed_logon, now_ms=TS, require_ed25519=True)
    assert (result.account_id, result.key_type) == (2, KeyType.ED25519)
    raw_sig = base64.b64decode(str(ed_logon["signature"]))
    assert len(raw_sig) == 64


def test_requests_on_a_logged_on_session(registry: KeyRegistry) -> None:
    # After session.logon: no apiKey/signature needed, but timestamp still is.
    result = verify_ws(registry, {"symbol": "BTCUSDT", "timestamp": TS}, now_ms=TS, session_api_key=ED_KEY)
    assert result.account_id == 2
    assert rejected(verify_ws, registry, {"symbol": "BTCUSDT"}, now_ms=TS, session_api_key=ED_KEY)[1] == -1102
    # Same apiKey explicitly is fine; a different one must be signed.
    assert verify_ws(registry, {"apiKey": ED_KEY, "timestamp": TS}, now_ms=TS, session_api_key=ED_KEY).account_id == 2
    other_key = {"apiKey": API_KEY, "timestamp": TS}
    assert rejected(verify_ws, registry, other_key, now_ms=TS, session_api_key=ED_KEY)[1] == -1102
    # An explicit signed request overrides the session key.
    signed = sign_ws_params(HmacSigner(API_KEY, SECRET), {}, timestamp_ms=TS)
    assert verify_ws(registry, signed, now_ms=TS, session_api_key=ED_KEY).account_id == 1
    # Revoked key: the session's next request fails with -2015 / 401.
    registry.remove(ED_KEY)
    assert rejected(verify_ws, registry, {"timestamp": TS}, now_ms=TS, session_api_key=ED_KEY) == (
        401,
        -2015,
        "Invalid API-key, IP, or permissions for action.",
    )


def test_ws_without_session_or_key_is_2014(registry: KeyRegistry) -> None:
    assert rejected(verify_ws, registry, {"timestamp": TS}, now_ms=TS)[:2] == (401, -2014)


# --------------------------------------------------------------------------- registry, parsing, secrecy


def test_parse_params_query_wins_and_decodes() -> None:
    assert parse_params(b"symbol=A%20B&x=1&signature=s", b"x=2&y=%E4%BD%A0+z") == {
        "symbol": "A B",
        "x": "1",
        "y": "你 z",
        "signature": "s",
    }
    with pytest.raises(AuthError) as info:
        parse_params(b"a=%FF")
    assert info.value.code == -1100


def test_registry_configuration_errors() -> None:
    registry = KeyRegistry()
    registry.add_hmac("Key1", "s", 1)
    with pytest.raises(ValueError, match="duplicate"):
        registry.add_hmac("Key1", "t", 2)
    with pytest.raises(ValueError, match="letters/digits"):
        registry.add_hmac("bad-key", "s", 1)
    with pytest.raises(ValueError, match="empty"):
        registry.add_hmac("Key2", "", 1)
    raw = ED_PRIVATE.public_key().public_bytes_raw()
    assert registry.add_ed25519("Key3", raw, 3).key_type is KeyType.ED25519
    assert "Key3" in registry and len(registry) == 2
    assert registry.get("Key3") is not None and registry.get("nope") is None


def test_registry_and_entries_hide_secrets(registry: KeyRegistry) -> None:
    entry = registry.lookup(API_KEY)
    for text in (repr(registry), str(registry), repr(entry), str(entry), str(AuthError(400, -1022, "x"))):
        assert SECRET not in text
        assert API_KEY not in text
    assert repr(registry) == "KeyRegistry(3 keys)"
    assert "account_id=1" in repr(entry)
    assert AuthError(401, -2015, "m").to_json() == {"code": -2015, "msg": "m"}
