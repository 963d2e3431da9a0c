"""API keys: ``lf_<prefix>_<secret>``; the prefix finds the row, the hash proves it."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.contrib.auth.models import User
from django.utils import timezone

from leads.models import ApiKey, ApiScope

KEY_PREFIX = "lf_"


def _hash(key: str) -> str:
    # Keys carry 256 bits of randomness, so a fast hash is as good as a slow one.
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_create(*, name: str, scope: str, created_by: User | None = None) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the key itself, which is never stored."""
    if scope not in ApiScope.values:
        raise ValueError(f"Unknown scope {scope!r}; use one of {', '.join(ApiScope.values)}.")
    prefix = secrets.token_hex(4)
    key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey.objects.create(
        name=name, prefix=prefix, key_hash=_hash(key), scope=scope, created_by=created_by
    )
    return row, key


def api_key_check(key: str) -> ApiKey | None:
    """The live key row for ``key``, or None."""
    if not key.startswith(KEY_PREFIX):
        return None
    prefix, _, secret = key[len(KEY_PREFIX) :].partition("_")
    if not prefix or not secret:
        return None
    row = ApiKey.objects.filter(prefix=prefix, revoked_at__isnull=True).first()
    if row is None or not hmac.compare_digest(row.key_hash, _hash(key)):
        return None
    now = timezone.now()
    # Writing on every request would serialise ingestion on this row.
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=row.pk).update(last_used_at=now)
    return row


def api_key_revoke(*, key: ApiKey) -> None:
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
