"""Encryption at rest of per-user secrets (git tokens, registry passwords, webhook URLs).

Values are encrypted with Fernet (AES-128-CBC + HMAC-SHA256) under a key derived from the
service's `secret_key`. Decrypted values are only used to act (clone, pull, notify): the
API never returns them and nothing logs them.
"""
from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken


class SecretBox:
    def __init__(self, secret_key: str):
        if not secret_key or len(secret_key) < 16:
            raise ValueError("The secret key needs at least 16 characters")
        key = base64.urlsafe_b64encode(hashlib.sha256(secret_key.encode()).digest())
        self._fernet = Fernet(key)

    def encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as e:
            raise ValueError("A stored secret cannot be decrypted with the configured key") from e


def mask(value: str | None) -> str | None:
    """What the API shows instead of a secret: whether one is set, never its value."""
    return "********" if value else None
