"""API keys with roles for ``basketflow serve``.

Keys come from a file (``--api-keys FILE``) or the environment (``BASKETFLOW_API_KEYS``),
in one form: entries separated by new lines or ``;``, each ``KEY:ROLE[,ROLE...]``;
blank lines and ``#`` comments are skipped. A role is ``read`` (features, scores),
``predict`` (``POST /predict``), ``push`` (``POST /events``) or ``admin`` (every role,
and ``/metrics``). A request names its key in ``Authorization: Bearer KEY`` or
``X-API-Key: KEY``. Only the keys' SHA-256 digests are kept, and nothing here ever logs
or repeats a key: an error names the entry's line, never its key.

>>> keys = parse_keys("# the shop\\nshop-key:read,predict; ops-key:admin", "env")
>>> sorted(keys.roles_of("shop-key")), keys.roles_of("ops-key") >= {"push"}, keys.roles_of("x")
(['predict', 'read'], True, None)
>>> parse_keys("k:read,write", "env")
Traceback (most recent call last):
...
basketflow.serving.auth.BadKeys: API key entry 1 of env has unknown role(s) write; roles: read, predict, push, admin
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from basketflow.errors import BasketflowError

ENV_API_KEYS = "BASKETFLOW_API_KEYS"
READ, PREDICT, PUSH, ADMIN = "read", "predict", "push", "admin"
ROLES = (READ, PREDICT, PUSH, ADMIN)


class BadKeys(BasketflowError, ValueError):
    """The API keys cannot be read or an entry is malformed (named by its number)."""


@dataclass(frozen=True)
class ApiKeys:
    """Key digests -> roles; empty: no keys configured, every route is open."""

    digests: dict[str, frozenset[str]]

    @property
    def enabled(self) -> bool:
        """Whether routes need a key."""
        return bool(self.digests)

    def roles_of(self, key: str) -> frozenset[str] | None:
        """The roles of ``key`` (admin's are all of them); None for an unknown key."""
        return self.digests.get(_digest(key))


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_keys(text: str, source: str) -> ApiKeys:
    """Keys from their text (module docstring); :class:`BadKeys` names a bad entry by
    its number in ``source``, never by its key."""
    digests: dict[str, frozenset[str]] = {}
    entries = [e.strip() for line in text.splitlines() for e in line.split(";")]
    for n, entry in enumerate((e for e in entries if e and not e.startswith("#")), 1):
        key, sep, roles_text = entry.rpartition(":")
        roles = frozenset(r.strip() for r in roles_text.split(",") if r.strip())
        if not sep or not key.strip() or not roles:
            raise BadKeys(f"API key entry {n} of {source} is not KEY:ROLE[,ROLE...]")
        unknown = sorted(roles - set(ROLES))
        if unknown:
            raise BadKeys(f"API key entry {n} of {source} has unknown role(s) "
                          f"{', '.join(unknown)}; roles: {', '.join(ROLES)}")
        digests[_digest(key.strip())] = frozenset(ROLES) if ADMIN in roles else roles
    return ApiKeys(digests)


def load_keys(path: Path | None, env_text: str | None) -> ApiKeys:
    """The keys of the file at ``path`` and of the environment's text, together; none
    configured: :attr:`ApiKeys.enabled` is False."""
    keys: dict[str, frozenset[str]] = {}
    if env_text:
        keys |= parse_keys(env_text, ENV_API_KEYS).digests
    if path is not None:
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise BadKeys(f"cannot read the API keys file {path}: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None
        found = parse_keys(text, str(path))
        if not found.enabled:
            raise BadKeys(f"the API keys file {path} holds no key")
        keys |= found.digests
    return ApiKeys(keys)


def presented_key(authorization: str | None, api_key: str | None) -> str | None:
    """The key a request presents: ``X-API-Key``, or ``Authorization: Bearer KEY``.

    >>> presented_key("Bearer abc", None), presented_key(None, "xyz"), presented_key("Basic a", None)
    ('abc', 'xyz', None)
    """
    if api_key:
        return api_key
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
