"""Least privilege in Redis: the ACL users ``basketflow security redis-acl`` prints.

Two users, each limited to the project's keys (``<prefix>:*``) and to the commands
basketflow sends:

- a **writer**, for ``basketflow run`` (and ``backfill --materialize``): it reads and
  writes feature values, scores and the flow's progress;
- a **reader**, for ``basketflow serve`` and the reading commands (``features``,
  ``entities``, ``score``, ``status``): its keys are read-only (``%R~``), so even a
  script (the vector read's) cannot write.

On a Redis Cluster, apply the lines on every node (a node's users are its own). Both
users may ask for the slot map (``CLUSTER SLOTS``) and the command table (``COMMAND``,
which redis-py's cluster client reads to route commands): neither reads or writes a key.

Neither may run an administrative command (CONFIG, FLUSHALL, KEYS, DEBUG, ACL, ...) or
touch a key outside the prefix. SCAN names keys without reading them and cannot be
limited to a pattern by an ACL: both users may list the names of every key in the
database (``entities`` and ``status`` need it), never read or write them.

A password is set by its SHA-256 (``#<hex>``) when a file holds it, so the printed lines
can be kept or mailed without the secret; otherwise a placeholder to replace.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from basketflow.errors import BasketflowError
from basketflow.sinks.online_store import glob_escape

#: What redis-py sends on connecting (its library name and version; errors ignored), and
#: on a Redis Cluster where it asks for the slot map (none of them reads or writes a key).
CONNECTION_COMMANDS = ("ping", "hello", "client|setinfo", "client|setname", "cluster|slots",
                       "command")
#: The reads of the online store: values (hashes, packed values), the vector read's
#: script, the scan behind ``entities`` and ``status``.
READ_COMMANDS = ("hget", "hgetall", "hmget", "get", "mget", "exists", "scan", "eval_ro",
                 "evalsha_ro")
#: The flow's writes: each view's hash and packed value with its TTL, the progress hash.
WRITE_COMMANDS = ("hset", "set", "expire")
WRITER = "basketflow-writer"
READER = "basketflow-reader"


class PasswordFileError(BasketflowError, ValueError):
    """A password file cannot be read or is empty."""


@dataclass(frozen=True)
class AclUser:
    """One ACL user: its name and the rules of its ``ACL SETUSER`` line."""

    name: str
    rules: tuple[str, ...]

    @property
    def line(self) -> str:
        """The command that creates (or resets) the user, for redis-cli or an ACL file."""
        return " ".join(("ACL", "SETUSER", self.name, *self.rules))


def password_rule(password_file: Path | None, placeholder: str) -> str:
    """``#<sha256>`` of the file's first line, or ``><placeholder>`` without a file.

    >>> password_rule(None, "writer-password")
    '><writer-password>'
    """
    if password_file is None:
        return f"><{placeholder}>"
    try:
        password = password_file.read_text().strip()
    except OSError as exc:
        raise PasswordFileError(f"cannot read the password file {password_file} "
                                f"({exc.strerror}); give a readable file") from exc
    if not password:
        raise PasswordFileError(f"the password file {password_file} is empty; write the "
                                "password on its first line")
    return "#" + hashlib.sha256(password.encode()).hexdigest()


def redis_acl(prefix: str, writer_password: Path | None = None,
              reader_password: Path | None = None) -> tuple[AclUser, AclUser]:
    """The writer and the reader of the keys under ``prefix`` (see the module).

    >>> writer, reader = redis_acl("bf")
    >>> print(reader.line)
    ACL SETUSER basketflow-reader reset on ><reader-password> resetchannels %R~bf:* -@all +ping +hello +client|setinfo +client|setname +cluster|slots +command +hget +hgetall +hmget +get +mget +exists +scan +eval_ro +evalsha_ro
    """
    keys = glob_escape(f"{prefix}:") + "*"
    allowed = tuple(f"+{c}" for c in CONNECTION_COMMANDS + READ_COMMANDS)
    writer = AclUser(WRITER, ("reset", "on", password_rule(writer_password, "writer-password"),
                              "resetchannels", f"~{keys}", "-@all", *allowed,
                              *(f"+{c}" for c in WRITE_COMMANDS)))
    reader = AclUser(READER, ("reset", "on", password_rule(reader_password, "reader-password"),
                              "resetchannels", f"%R~{keys}", "-@all", *allowed))
    return writer, reader
