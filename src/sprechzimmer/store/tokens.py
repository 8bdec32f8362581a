"""Random credentials, of which the database keeps only a SHA-256 hash."""

import hashlib
import secrets


def new_token() -> str:
    """A fresh credential with 256 bits of randomness, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The form in which a credential is stored and looked up."""
    return hashlib.sha256(token.encode()).hexdigest()
