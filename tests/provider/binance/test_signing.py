"""Client-side signing: the official HMAC vectors byte for byte, Ed25519, encoding, secrecy."""

from __future__ import annotations

import base64
import pickle
from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from provider.binance.signing import (
    API_KEY_HEADER,
    Ed25519Signer,
    HmacSigner,
    KeyType,
    ParamValue,
    encode_params,
    format_value,
    load_signer,
    sign_rest,
    sign_ws_params,
    ws_signature_payload,
)

SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
TS = 1499827319559
ORDER: list[tuple[str, ParamValue]] = [("symbol", "LTCBTC"), ("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "GTC")]
SIZE: list[tuple[str, ParamValue]] = [("quantity", 1), ("price", "0.1")]


@pytest.fixture
def hmac_signer() -> HmacSigner:
    return HmacSigner(API_KEY, SECRET)


@pytest.fixture
def ed_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


# --------------------------------------------------------------------------- HMAC vectors (§3.2)

RestVector = tuple[str, list[tuple[str, ParamValue]], list[tuple[str, ParamValue]] | None, str, str, bytes]
REST_VECTORS: list[RestVector] = [
    (
        "all in query",
        ORDER + SIZE,
        None,
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
        "&signature=c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71",
        "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71",
        b"",
    ),
    (
        "query and body",
        ORDER,
        SIZE,
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC",
        "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77",
        b"quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
        b"&signature=0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77",
    ),
    (
        "unicode symbol, percent-encoded before signing",
        [("symbol", "１２３４５６"), *ORDER[1:], *SIZE],
        None,
        "symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96&side=BUY&type=LIMIT&timeInForce=GTC"
        "&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
        "&signature=e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3",
        "e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3",
        b"",
    ),
]


@pytest.mark.parametrize(
    ("query", "body", "want_query", "want_sig", "want_body"),
    [v[1:] for v in REST_VECTORS],
    ids=[v[0] for v in REST_VECTORS],
)
def test_rest_hmac_vectors(
    hmac_signer: HmacSigner,
    query: list[tuple[str, ParamValue]],
    body: list[tuple[str, ParamValue]] | None,
    want_query: str,
    want_sig: str,
    want_body: bytes,
) -> None:
    req = sign_rest(hmac_signer, query, body, timestamp_ms=TS, recv_window_ms=5000)
    assert req.signature == want_sig
    assert req.query == want_query
    assert req.body == want_body


def test_mixed_vector_signs_query_immediately_followed_by_body(hmac_signer: HmacSigner) -> None:
    req = sign_rest(hmac_signer, ORDER, SIZE, timestamp_ms=TS, recv_window_ms=5000)
    assert req.signed_payload == (
        b"symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTCquantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
    )


def test_signing_the_raw_unicode_form_gives_a_different_signature(hmac_signer: HmacSigner) -> None:
    raw = (
        "symbol=１２３４５６&side=BUY&type=LIMIT&timeInForce=GTC"
        "&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
    )
    assert hmac_signer.sign(raw.encode()) != REST_VECTORS[2][4]


def test_ws_api_hmac_vector(hmac_signer: HmacSigner) -> None:
    params: dict[str, ParamValue] = {
        "symbol": "BTCUSDT",
        "side": "SELL",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": "0.01000000",
        "price": "52000.00",
    }
    signed = sign_ws_params(hmac_signer, params, timestamp_ms=1645423376532, recv_window_ms=100)
    assert ws_signature_payload(signed) == (
        "apiKey=vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A&price=52000.00"
        "&quantity=0.01000000&recvWindow=100&side=SELL&symbol=BTCUSDT&timeInForce=GTC"
        "&timestamp=1645423376532&type=LIMIT"
    )
    assert signed["signature"] == "aa1b5712c094bc4e57c05a1a5c1fd8d88dcd628338ea863fec7b88e59fe2db24"
    assert signed["apiKey"] == API_KEY


def test_ws_payload_is_sorted_unencoded_and_ignores_signature() -> None:
    assert ws_signature_payload({"b": "x y", "a": "１", "signature": "zzz"}) == "a=１&b=x y"


def test_sign_ws_params_replaces_an_old_signature_and_keeps_an_explicit_api_key(hmac_signer: HmacSigner) -> None:
    signed = sign_ws_params(hmac_signer, {"apiKey": "other", "signature": "stale", "timestamp": 1})
    assert signed["apiKey"] == "other"
    assert signed["signature"] == hmac_signer.sign(b"apiKey=other&timestamp=1")


# --------------------------------------------------------------------------- encoding


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("abc", "abc"),
        (5000, "5000"),
        (True, "true"),
        (False, "false"),
        (Decimal("0.00000001"), "0.00000001"),
        (Decimal("52000.00"), "52000.00"),
        (Decimal("1E+2"), "100"),
        (["BTCUSDT", "BNBBTC"], '["BTCUSDT","BNBBTC"]'),
        (("这是测试币456",), '["这是测试币456"]'),
    ],
)
def test_format_value(value: ParamValue, text: str) -> None:
    assert format_value(value) == text


@pytest.mark.parametrize("bad", [Decimal("NaN"), Decimal("Infinity")])
def test_format_value_rejects_non_finite(bad: Decimal) -> None:
    with pytest.raises(ValueError, match="non-finite"):
        format_value(bad)


def test_format_value_rejects_float() -> None:
    with pytest.raises(TypeError):
        format_value(0.1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("params", "encoded"),
    [
        ([], ""),
        ({"b": "1", "a": "2"}, "b=1&a=2"),  # order preserved, not sorted
        ([("symbols", ["BTCUSDT", "BNBBTC"])], "symbols=%5B%22BTCUSDT%22%2C%22BNBBTC%22%5D"),
        ([("q", "a b+c&d=e/f~g-h_i.j")], "q=a%20b%2Bc%26d%3De%2Ff~g-h_i.j"),
        ([("symbol", "这是测试币456")], "symbol=%E8%BF%99%E6%98%AF%E6%B5%8B%E8%AF%95%E5%B8%81456"),
    ],
)
def test_encode_params(params: list[tuple[str, ParamValue]] | dict[str, ParamValue], encoded: str) -> None:
    assert encode_params(params) == encoded


def test_params_without_body_go_to_query_and_with_empty_body_go_to_body(hmac_signer: HmacSigner) -> None:
    in_query = sign_rest(hmac_signer, [("symbol", "BTCUSDT")], timestamp_ms=1)
    assert in_query.query.startswith("symbol=BTCUSDT&timestamp=1&signature=")
    assert in_query.body == b""
    assert in_query.headers == {API_KEY_HEADER: API_KEY}

    in_body = sign_rest(hmac_signer, [("symbol", "BTCUSDT")], {}, timestamp_ms=1)
    assert in_body.query == "symbol=BTCUSDT"
    assert in_body.body.startswith(b"timestamp=1&signature=")
    assert in_body.signed_payload == b"symbol=BTCUSDTtimestamp=1"
    assert in_body.headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_url_is_built_from_the_encoded_query(hmac_signer: HmacSigner) -> None:
    req = sign_rest(hmac_signer, [("symbol", "ＢＴＣ")], timestamp_ms=1)
    assert req.url("http://127.0.0.1:8900/", "/api/v3/order") == "http://127.0.0.1:8900/api/v3/order?" + req.query
    assert sign_rest(hmac_signer, None, {}, timestamp_ms=1).url("http://h", "/p") == "http://h/p"


def test_signature_parameter_is_refused(hmac_signer: HmacSigner) -> None:
    with pytest.raises(ValueError, match="signature"):
        sign_rest(hmac_signer, [("signature", "x")])


# --------------------------------------------------------------------------- Ed25519


def test_ed25519_round_trip_from_pem_file(tmp_path: Path, ed_key: Ed25519PrivateKey) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(_pem(ed_key))
    signer = Ed25519Signer.from_pem_file(API_KEY, path)
    assert signer.key_type is KeyType.ED25519

    req = sign_rest(signer, ORDER, SIZE, timestamp_ms=TS)
    raw_signature = base64.b64decode(req.signature, validate=True)
    ed_key.public_key().verify(raw_signature, req.signed_payload)  # raises if invalid
    # base64 '+', '/', '=' are percent-encoded on the wire, and decode back to the signature.
    wire_value = req.body.decode().rsplit("&signature=", 1)[1]
    assert not set("+/=") & set(wire_value)
    assert unquote(wire_value) == req.signature


def test_ed25519_ws_round_trip(ed_key: Ed25519PrivateKey) -> None:
    signer = Ed25519Signer(API_KEY, ed_key)
    signed = sign_ws_params(signer, {}, timestamp_ms=1649729878532)
    payload = f"apiKey={API_KEY}&timestamp=1649729878532".encode()
    ed_key.public_key().verify(base64.b64decode(str(signed["signature"])), payload)


def test_ed25519_public_key_pem(ed_key: Ed25519PrivateKey) -> None:
    pem = Ed25519Signer(API_KEY, ed_key).public_key_pem()
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    assert serialization.load_pem_public_key(pem).public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    ) == ed_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_encrypted_pem_needs_its_password(ed_key: Ed25519PrivateKey) -> None:
    pem = ed_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    )
    assert Ed25519Signer.from_pem(API_KEY, pem, b"pw").key_type is KeyType.ED25519
    with pytest.raises(ValueError, match="cannot load"):
        Ed25519Signer.from_pem(API_KEY, pem)


def test_non_ed25519_pem_is_refused() -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="expected Ed25519"):
        Ed25519Signer.from_pem(API_KEY, pem)
    with pytest.raises(ValueError, match="cannot load"):
        Ed25519Signer.from_pem(API_KEY, b"not a pem")


def test_load_signer_picks_the_key_type(tmp_path: Path, ed_key: Ed25519PrivateKey) -> None:
    path = tmp_path / "k.pem"
    path.write_bytes(_pem(ed_key))
    assert load_signer(API_KEY, secret=SECRET).key_type is KeyType.HMAC_SHA256
    assert load_signer(API_KEY, private_key_file=path).key_type is KeyType.ED25519
    with pytest.raises(ValueError, match="exactly one"):
        load_signer(API_KEY)
    with pytest.raises(ValueError, match="exactly one"):
        load_signer(API_KEY, secret=SECRET, private_key_file=path)


@pytest.mark.parametrize(("api_key", "secret"), [("", SECRET), (API_KEY, "")])
def test_empty_credentials_are_refused(api_key: str, secret: str) -> None:
    with pytest.raises(ValueError, match="empty"):
        HmacSigner(api_key, secret)


# --------------------------------------------------------------------------- secrecy


def test_secrets_never_appear_in_repr_or_str(hmac_signer: HmacSigner, ed_key: Ed25519PrivateKey) -> None:
    ed_signer = Ed25519Signer(API_KEY, ed_key)
    request = sign_rest(hmac_signer, ORDER, timestamp_ms=TS)
    private_b64 = base64.b64encode(
        ed_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    ).decode()
    for obj in (hmac_signer, ed_signer, request):
        for text in (repr(obj), str(obj), f"{obj}"):
            assert SECRET not in text
            assert API_KEY not in text
            assert private_b64 not in text
            assert _pem(ed_key).decode() not in text
    assert repr(hmac_signer) == f"HmacSigner(key_id={hmac_signer.key_id!r})"
    assert hmac_signer.key_id.startswith("sha256:") and len(hmac_signer.key_id) == 15


def test_signers_refuse_to_be_pickled(hmac_signer: HmacSigner) -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(hmac_signer)
