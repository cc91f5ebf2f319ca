"""Webhook signing secrets: made here, shown once, stored encrypted (docs/webhooks.md, "Secrets").

A secret is Standard Webhooks' ``whsec_<base64 of 32 random bytes>`` (the spec asks for 24 to 64
bytes). The server must sign with it, so it cannot keep a hash the way it keeps API keys: it keeps
the secret encrypted with Fernet (AES-128-CBC + HMAC-SHA256, ``cryptography``) under a key that
never enters the database: ``TRADEDESK_WEBHOOK_SECRET_KEY`` (a Fernet key: 32 url-safe base64
bytes), or else the file ``<data_dir>/webhook-secrets.key`` created once with mode 0600 (like
``admin.key``). A database dump or backup alone reveals no secret. Secrets are never logged;
responses that carry one pass :data:`gateway.idempotency.SECRET_FIELDS`, so an idempotent replay
returns ``"secret": null``.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
KEY_FILE = "webhook-secrets.key"


def new_secret() -> str:
    """A fresh ``whsec_...`` signing secret."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


class SecretBox:
    """Encrypts and decrypts signing secrets with one Fernet ``key`` (bytes, url-safe base64)."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def seal(self, secret: str) -> bytes:
        """The ciphertext stored in ``webhook_secrets.ciphertext``."""
        return self._fernet.encrypt(secret.encode("ascii"))

    def open(self, ciphertext: bytes) -> str:
        """The secret back. Raises ``ValueError`` when the ciphertext was not sealed with this key
        (the key was changed: rotate the endpoint's secret)."""
        try:
            return self._fernet.decrypt(ciphertext).decode("ascii")
        except InvalidToken:
            raise ValueError("webhook secret sealed under another key") from None


def _key_file(path: Path) -> bytes:
    """The key in ``path``, created (mode 0600, exclusive create: concurrent processes agree) when absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as f:
        f.write(Fernet.generate_key())
    return path.read_bytes().strip()


def box_for(settings: Any) -> SecretBox:
    """The :class:`SecretBox` of ``settings``: ``webhook_secret_key`` when set, else the key file
    under ``data_dir``. Raises ``ValueError`` on a malformed key."""
    configured = settings.webhook_secret_key
    if configured is not None:
        key = configured.get_secret_value().encode("ascii")
    else:
        key = _key_file(Path(settings.data_dir) / KEY_FILE)
    try:
        return SecretBox(key)
    except (ValueError, TypeError):
        raise ValueError(
            "TRADEDESK_WEBHOOK_SECRET_KEY is not a Fernet key (32 url-safe base64 bytes)"
        ) from None
