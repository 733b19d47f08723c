"""The registration's signature, as the workerbee protocol describes it.

`sig` is a BIP-340 Schnorr signature (secp256k1) over the SHA-256 of the registration as
compact JSON with sorted keys and without `sig`; `pubkey` is the signer's x-only public key.
Both, like the key itself, are URL-safe base64, as the reference worker writes them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from typing import Any

from contract.errors import ConfigError


def registration_digest(message: dict[str, Any]) -> bytes:
    """The 32 bytes that `sig` signs: the message without `sig`, sorted and compact."""
    unsigned = {key: value for key, value in message.items() if key != "sig"}
    dump = json.dumps(unsigned, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(dump.encode()).digest()


def decode_private_key(private_key: str) -> bytes:
    try:
        secret = base64.urlsafe_b64decode(private_key.strip())
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"ADAPTER_WORKERBEE_PRIVATE_KEY is not URL-safe base64: {exc}") from exc
    if len(secret) != 32:
        raise ConfigError(
            f"ADAPTER_WORKERBEE_PRIVATE_KEY must hold 32 bytes, it holds {len(secret)}."
        )
    return secret


def public_key(private_key: str) -> str:
    """The x-only public key of `private_key`, URL-safe base64."""
    import coincurve

    try:
        key = coincurve.PrivateKey(decode_private_key(private_key))
    except ValueError as exc:
        raise ConfigError(f"ADAPTER_WORKERBEE_PRIVATE_KEY is not a valid key: {exc}") from exc
    return base64.urlsafe_b64encode(key.public_key_xonly.format()).decode()


def sign(message: dict[str, Any], private_key: str) -> dict[str, Any]:
    """`message` with `pubkey` and `sig` set (pubkey is part of what is signed)."""
    import coincurve

    key = coincurve.PrivateKey(decode_private_key(private_key))
    signed = {**message, "pubkey": public_key(private_key)}
    signature = key.sign_schnorr(registration_digest(signed), os.urandom(32))
    signed["sig"] = base64.urlsafe_b64encode(signature).decode()
    return signed


def verify(message: dict[str, Any]) -> bool:
    """Whether `sig` is `pubkey`'s signature of `message` (what a dispatcher would check)."""
    import coincurve

    try:
        key = coincurve.PublicKeyXOnly(base64.urlsafe_b64decode(message["pubkey"]))
        return bool(
            key.verify(base64.urlsafe_b64decode(message["sig"]), registration_digest(message))
        )
    except (KeyError, ValueError, binascii.Error):
        return False
