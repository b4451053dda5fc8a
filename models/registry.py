"""The model registry: every version of the live classifier, its lineage, its metrics,
and the aliases (``champion``, ``challenger``) that say which version does what.

**Store.** One SQLite file, ``<data>/models/registry.sqlite``, in WAL mode with a busy
timeout, so the flow, ``basketflow serve``'s workers and the command line read and write
it at once. A version is a row of ``versions``: its entry (:class:`Version`, as canonical
JSON) and an HMAC of it. The model itself is a pickle under
``<data>/models/artifacts/<sha256>.pkl``, named by its content's digest, which the entry
records. Registering writes the artifact first (a temporary file, fsync, rename), then
inserts the row in one transaction, so a process killed at any moment leaves either no
version or a whole one (at worst an artifact no row names, removed later).

**Tamper-proof loading.** The entry is authenticated by an HMAC-SHA256 over its id and
its JSON, with a key kept in ``<data>/models/registry.key`` (created with mode 0600;
refused when others may read it). :meth:`Registry.load` unpickles an artifact only when
the entry's HMAC and the file's sha256 both match: editing the file and the digest in
the entry gets a :class:`RegistryError` naming the version, and nothing in the file runs.

**Aliases.** ``aliases`` maps an alias to a version; each change is one transaction and
is logged in ``alias_log``. ``promote`` sets an alias, ``rollback`` puts it back to the
version it held before, walking back one step per call. A version registered by the flow
with the champion as its parent moves the champion on (the champion follows the flow's
learning; see :mod:`basketflow.flows.scoring`).
:meth:`Registry.changed` tells cheaply (SQLite's ``data_version``) whether another
connection committed anything since the last call, so a reader polls without a query.

**Retention.** After each registration, versions beyond the newest :data:`DEFAULT_KEEP`
are deleted, except those an alias names now and those ever promoted or rolled back to
by hand; their artifacts are deleted once no row names them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle
import secrets
import sqlite3
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from basketflow.errors import BasketflowError
from basketflow.models.aliases import CHAMPION
from basketflow.models.classifier import BasketClassifier
from basketflow.schemas.features import BASKET, CUSTOMER
from basketflow.sinks.store_writes import writing

REGISTRY_FILE = "registry.sqlite"
KEY_FILE = "registry.key"
ARTIFACTS = "artifacts"
#: Versions kept by the last-N rule of retention.
DEFAULT_KEEP = 100
#: An artifact no row names is deleted only when older than this (seconds): a registration
#: in another process may have written it and not committed its row yet.
ORPHAN_AGE = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    entry TEXT NOT NULL,
    hmac TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS aliases (
    alias TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    previous INTEGER,
    changed TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alias_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    previous INTEGER,
    action TEXT NOT NULL,
    at TEXT NOT NULL
);
"""


#: The action of an alias change made by a registration (the champion following the flow).
FOLLOW = "follow"


class RegistryError(BasketflowError):
    """The registry cannot do what was asked; the message says why and what to do."""


@dataclass(frozen=True)
class Lineage:
    """Where a version comes from: its parent version (None: a fresh model), the
    baskets it had learnt, the Kafka offsets (``offset:<topic>:<partition>`` -> next
    offset) and event-time clock (epoch seconds) it had consumed, the segmentation whose
    labels it learns, the versions of the feature views it reads, what registered it
    (``flow``, ``train``), and the code and library versions."""

    parent: int | None
    n_learned: int
    clock: int | None
    segmentation: str
    feature_views: dict[str, str]
    source: str
    offsets: dict[str, int] = field(default_factory=dict)
    code: dict[str, str] = field(default_factory=lambda: dict(code_versions()))

    @classmethod
    def of(cls, model: BasketClassifier, source: str, parent: int | None = None,
           clock: int | None = None, offsets: dict[str, int] | None = None) -> Lineage:
        """The lineage of ``model`` now: its baskets learnt and labels, the feature views
        it reads as they are defined now."""
        return cls(parent, model.n_learned, clock, model.labels_version, feature_views(),
                   source, dict(offsets or {}))


@dataclass(frozen=True)
class Version:
    """One registered version: its id, the model (the classifier's version: pipeline,
    features and labels), lineage, metrics (:mod:`basketflow.models.prequential`), when
    it was created, and its artifact's sha256 and size."""

    id: int
    model: str
    lineage: Lineage
    metrics: dict[str, Any]
    created: str
    sha256: str
    bytes: int

    def to_json(self) -> dict[str, Any]:
        """Plain data (``--json``)."""
        return asdict(self)


@dataclass(frozen=True)
class AliasChange:
    """One change of an alias: its place in the alias log, the version it named, and the
    action (``promote``, ``rollback``, ``follow``, ``train``)."""

    id: int
    version: int
    action: str


def feature_views() -> dict[str, str]:
    """The versions of the feature views the classifier reads."""
    return {view.name: view.version for view in (BASKET, CUSTOMER)}


@lru_cache(maxsize=1)
def code_versions() -> dict[str, str]:
    """The versions of basketflow, Python and the libraries a model depends on."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": sys.version.split()[0]}
    for name in ("basketflow", "river", "numpy"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "unknown"
    return found


def registry_dir(data_dir: Path) -> Path:
    """Where a data directory's registry lives: ``<data>/models``."""
    return Path(data_dir) / "models"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, rename it over."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _key(directory: Path) -> bytes:
    """The HMAC key of the registry in ``directory``, created (mode 0600) when absent.
    Two processes creating it at once agree: the key is linked into place only if no
    other is there."""
    path = directory / KEY_FILE
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{KEY_FILE}.")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_hex(32).encode())
                f.flush()
                os.fsync(f.fileno())
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            Path(tmp).unlink(missing_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise RegistryError(f"the registry key {path} may be read by others (mode "
                            f"{mode:o}): no model is loaded with it; run `chmod 600 {path}`")
    key = path.read_bytes().strip()
    if len(key) < 32:
        raise RegistryError(f"the registry key {path} is damaged (too short): versions "
                            "cannot be verified; restore it from a backup")
    return key


class Registry:
    """A data directory's model registry (see the module docstring). One connection per
    instance; an instance belongs to one thread (open one per thread or process)."""

    def __init__(self, directory: Path, keep: int = DEFAULT_KEEP) -> None:
        self.directory = Path(directory)
        self.keep = keep
        with writing(self.directory):
            (self.directory / ARTIFACTS).mkdir(parents=True, exist_ok=True)
            self._key = _key(self.directory)
        try:
            self._db = sqlite3.connect(self.directory / REGISTRY_FILE, timeout=30.0,
                                       isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise RegistryError(f"the model registry {self.directory / REGISTRY_FILE} "
                                f"cannot be opened ({exc}); move it aside to start a new "
                                "one") from None
        self._data_version = -1

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (taken at once, so readers of it see all or nothing); a
        database that cannot be written (a full disk, a read-only file) is a
        :class:`RegistryError`."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            raise RegistryError(f"the model registry {self.directory / REGISTRY_FILE} "
                                f"cannot be written ({exc}): free space or fix the "
                                "directory, then run the same command again") from None

    def _sign(self, version_id: int, entry: str) -> str:
        return hmac.new(self._key, f"{version_id}\n{entry}".encode(), hashlib.sha256
                        ).hexdigest()

    def register(self, model: BasketClassifier, lineage: Lineage,
                 metrics: dict[str, Any], *, follow: bool = False) -> Version:
        """Store ``model`` as a new version; with ``follow``, the champion moves to it
        when the champion is unset or is its parent (in the same transaction). Then
        prune by the retention rule."""
        data = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
        digest = hashlib.sha256(data).hexdigest()
        artifact = self.directory / ARTIFACTS / f"{digest}.pkl"
        with writing(artifact):
            if not artifact.exists():
                _write_atomic(artifact, data)
            else:
                os.utime(artifact)  # not an orphan to prune while this row is written
        with self._transaction() as db:
            version_id = db.execute("INSERT INTO versions (entry, hmac) VALUES ('', '')"
                                    ).lastrowid
            assert version_id is not None
            version = Version(version_id, model.version, lineage, metrics, _now(), digest,
                              len(data))
            entry = json.dumps(version.to_json(), sort_keys=True, separators=(",", ":"))
            db.execute("UPDATE versions SET entry = ?, hmac = ? WHERE id = ?",
                       (entry, self._sign(version_id, entry), version_id))
            if follow and self._follows(model.version, lineage.parent):
                self._set_alias(CHAMPION, version_id, self._alias(CHAMPION), FOLLOW)
            self._prune(db)
        self._remove_orphans()
        return version

    def _follows(self, model: str, parent: int | None) -> bool:
        """Whether the champion moves on to a new version of ``model`` with ``parent``:
        when it is unset, is the parent, was last moved by a registration (not chosen by
        hand), or is a model of another segmentation or features (which the flow cannot
        learn on)."""
        change = self.last_change(CHAMPION)
        if change is None or change.version == parent or change.action == FOLLOW:
            return True
        row = self._db.execute("SELECT entry FROM versions WHERE id = ?",
                               (change.version,)).fetchone()
        return row is None or json.loads(row[0])["model"] != model

    def _prune(self, db: sqlite3.Connection) -> None:
        """Delete the versions the retention rule lets go (see the module docstring)."""
        db.execute("""
            DELETE FROM versions
            WHERE id NOT IN (SELECT id FROM versions ORDER BY id DESC LIMIT ?)
              AND id NOT IN (SELECT version FROM aliases)
              AND id NOT IN (SELECT version FROM alias_log WHERE action != 'follow')""",
                   (self.keep,))

    def _remove_orphans(self) -> None:
        """Delete the artifacts no version names that are older than :data:`ORPHAN_AGE`."""
        named = {json.loads(entry)["sha256"] for (entry,) in
                 self._db.execute("SELECT entry FROM versions WHERE entry != ''")}
        cutoff = time.time() - ORPHAN_AGE
        for path in (self.directory / ARTIFACTS).glob("*.pkl"):
            try:
                if path.stem not in named and path.stat().st_mtime < cutoff:
                    path.unlink()
            except FileNotFoundError:
                continue

    def _row(self, version_id: int) -> Version:
        """The verified entry of a version; RegistryError if absent or not authentic."""
        row = self._db.execute("SELECT entry, hmac FROM versions WHERE id = ?",
                               (version_id,)).fetchone()
        if row is None:
            raise RegistryError(f"no model version {version_id} in the registry (pruned, or "
                                "never registered): `basketflow models list` shows them")
        return self._verified(version_id, *row)

    def _verified(self, version_id: int, entry: str, mac: str) -> Version:
        if not hmac.compare_digest(self._sign(version_id, entry), mac):
            raise RegistryError(f"model version {version_id} was refused: its registry "
                                "entry does not match its HMAC (it was edited, or the key "
                                "changed); nothing of it was loaded. Promote another version "
                                "(`basketflow models promote`) or register a new one")
        data = json.loads(entry)
        return Version(**{**data, "lineage": Lineage(**data["lineage"])})

    def get(self, version_id: int) -> Version:
        """One version's verified entry."""
        return self._row(version_id)

    def versions(self) -> list[Version]:
        """Every version, oldest first, each verified (a tampered one raises)."""
        return [self._verified(i, entry, mac) for i, entry, mac in self._db.execute(
            "SELECT id, entry, hmac FROM versions WHERE entry != '' ORDER BY id")]

    def verify(self) -> tuple[int, list[tuple[int, Path, str]]]:
        """Check every version's entry (HMAC) and artifact (sha256) without unpickling
        anything: how many versions, and each that fails as (version, file, reason)."""
        failed = []
        rows = self._db.execute("SELECT id, entry, hmac FROM versions WHERE entry != '' "
                                "ORDER BY id").fetchall()
        for version_id, entry, mac in rows:
            if not hmac.compare_digest(self._sign(version_id, entry), mac):
                failed.append((version_id, self.directory / REGISTRY_FILE,
                               f"version {version_id}: its entry does not match its HMAC"))
                continue
            digest = json.loads(entry)["sha256"]
            path = self.directory / ARTIFACTS / f"{digest}.pkl"
            try:
                if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
                    failed.append((version_id, path, f"version {version_id}: its artifact "
                                   "does not match its sha256"))
            except FileNotFoundError:
                failed.append((version_id, path, f"version {version_id}: its artifact is "
                               "missing"))
        return len(rows), failed

    def load(self, version_id: int) -> BasketClassifier:
        """The model of a version, unpickled only after its entry's HMAC and its
        artifact's sha256 are checked (see the module docstring)."""
        version = self._row(version_id)
        path = self.directory / ARTIFACTS / f"{version.sha256}.pkl"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise RegistryError(f"model version {version_id} was refused: its artifact "
                                f"{path} is missing; promote another version") from None
        if hashlib.sha256(data).hexdigest() != version.sha256:
            raise RegistryError(f"model version {version_id} was refused: its artifact "
                                f"{path} does not match the sha256 of its entry (corrupt or "
                                "modified); nothing of it was loaded. Promote another version")
        model = pickle.loads(data)
        if not isinstance(model, BasketClassifier) or model.version != version.model:
            raise RegistryError(f"model version {version_id} was refused: its artifact does "
                                f"not hold the {version.model} classifier its entry names")
        return model

    def _alias(self, alias: str) -> int | None:
        row = self._db.execute("SELECT version FROM aliases WHERE alias = ?",
                               (alias,)).fetchone()
        return None if row is None else int(row[0])

    def _set_alias(self, alias: str, version_id: int, previous: int | None,
                   action: str) -> None:
        at = _now()
        self._db.execute(
            "INSERT INTO aliases (alias, version, previous, changed) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (alias) DO UPDATE SET version = excluded.version, "
            "previous = excluded.previous, changed = excluded.changed",
            (alias, version_id, previous, at))
        self._db.execute("INSERT INTO alias_log (alias, version, previous, action, at) "
                         "VALUES (?, ?, ?, ?, ?)", (alias, version_id, previous, action, at))

    def last_change(self, alias: str) -> AliasChange | None:
        """The latest change of ``alias`` (None: never set)."""
        row = self._db.execute("SELECT id, version, action FROM alias_log WHERE alias = ? "
                               "ORDER BY id DESC LIMIT 1", (alias,)).fetchone()
        return None if row is None else AliasChange(int(row[0]), int(row[1]), row[2])

    def aliases(self) -> dict[str, int]:
        """Alias -> version id."""
        return {a: int(v) for a, v in self._db.execute("SELECT alias, version FROM aliases")}

    def alias(self, alias: str) -> int | None:
        """The version an alias names, or None."""
        return self._alias(alias)

    def promote(self, version_id: int, alias: str = CHAMPION) -> int | None:
        """Point ``alias`` at a version (one transaction); the version it named before."""
        with self._transaction():
            self._row(version_id)
            previous = self._alias(alias)
            self._set_alias(alias, version_id, previous, "promote")
        return previous

    def rollback(self, alias: str = CHAMPION) -> tuple[int, int]:
        """Put ``alias`` back to the version it named before (one transaction): the
        (from, to) versions. A second rollback goes one step further back."""
        with self._transaction() as db:
            row = db.execute("SELECT version, previous FROM aliases WHERE alias = ?",
                             (alias,)).fetchone()
            if row is None or row[1] is None:
                raise RegistryError(f"{alias} has no earlier version to roll back to: "
                                    "`basketflow models list` shows the versions; "
                                    "`basketflow models promote VERSION` picks one")
            current, target = int(row[0]), int(row[1])
            self._row(target)
            before = db.execute(
                "SELECT previous FROM alias_log WHERE alias = ? AND version = ? "
                "AND action != 'rollback' ORDER BY id DESC LIMIT 1", (alias, target)
            ).fetchone()
            self._set_alias(alias, target, before[0] if before else None, "rollback")
        return current, target

    def changed(self) -> bool:
        """Whether anything was committed to the registry since the last call (by any
        connection): a cheap check for a reader that polls the aliases."""
        (value,) = self._db.execute("PRAGMA data_version").fetchone()
        seen, self._data_version = self._data_version, value
        return value != seen


def champion_clock(directory: Path) -> tuple[int, int] | None:
    """The champion's version and the event-time clock it had consumed (the end of what it
    learnt), from the registry in ``directory``; None when there is no registry (none is
    created), no champion, or a champion registered without a clock."""
    if not (Path(directory) / REGISTRY_FILE).exists():
        return None
    registry = Registry(directory)
    try:
        version_id = registry.alias(CHAMPION)
        if version_id is None:
            return None
        clock = registry.get(version_id).lineage.clock
        return None if clock is None else (version_id, clock)
    finally:
        registry.close()
