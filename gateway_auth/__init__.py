"""Bearer tokens shared by both gateways: the tokens file, scopes, and who a token belongs to."""

from gateway_auth.tokens import (
    Principal,
    Scope,
    TokenEntry,
    TokenFileError,
    TokenStore,
    create_dev_tokens,
    hash_token,
    load_gateway_tokens,
    new_token,
    parse_scopes,
)

__all__ = [
    "Principal",
    "Scope",
    "TokenEntry",
    "TokenFileError",
    "TokenStore",
    "create_dev_tokens",
    "hash_token",
    "load_gateway_tokens",
    "new_token",
    "parse_scopes",
]
