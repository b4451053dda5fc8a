"""The model registry: versions with lineage and metrics, content-addressed artifacts,
tamper-proof loading (no code of a tampered artifact runs), aliases, retention, several
processes at once, and no half-written version after a kill -9 mid-write."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from basketflow.models import registry as registry_module
from basketflow.models.classifier import BasketClassifier, classifier_features
from basketflow.models.aliases import CHAMPION
from basketflow.models.registry import (
    ARTIFACTS,
    KEY_FILE,
    REGISTRY_FILE,
    Lineage,
    Registry,
    RegistryError,
)

X = classifier_features({"value": 10.0, "lines": 2, "country": "France"}, None)


def model_after(n: int, labels: str = "seg-1") -> BasketClassifier:
    """A classifier that has learnt ``n`` baskets."""
    model = BasketClassifier(labels)
    for i in range(n):
        model.learn(X, "small" if i % 2 else "big")
    return model


def register(registry: Registry, n: int, parent: int | None = None,
             follow: bool = False) -> int:
    return registry.register(model_after(n), Lineage.of(model_after(n), "flow", parent,
                                                        1_300_000_000 + n),
                             {"since_start": {"baskets": n}}, follow=follow).id


def test_a_version_keeps_its_model_lineage_and_metrics(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    model = model_after(3)
    version = registry.register(model, Lineage.of(model, "flow", None, 1_300_000_000,
                                                  {"offset:tx:0": 42}),
                                {"since_start": {"baskets": 2, "accuracy": 0.5}})
    got = Registry(tmp_path).get(version.id)  # another connection
    assert got == version
    assert (got.lineage.n_learned, got.lineage.clock, got.lineage.segmentation) == \
        (3, 1_300_000_000, "seg-1")
    assert got.lineage.offsets == {"offset:tx:0": 42}
    assert set(got.lineage.feature_views) == {"basket", "customer"}
    assert {"python", "basketflow", "river", "numpy"} <= set(got.lineage.code)
    data = (tmp_path / ARTIFACTS / f"{got.sha256}.pkl").read_bytes()
    assert hashlib.sha256(data).hexdigest() == got.sha256 and len(data) == got.bytes
    loaded = registry.load(version.id)
    assert loaded.n_learned == 3 and loaded.predict(X, 0) == model.predict(X, 0)


def test_the_key_is_private_and_a_readable_one_is_refused(tmp_path: Path) -> None:
    Registry(tmp_path)
    key = tmp_path / KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    key.chmod(0o644)
    with pytest.raises(RegistryError, match="chmod 600"):
        Registry(tmp_path)


class _Marker:
    """A pickle that writes a file when it is unpickled: what must never run."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (Path.write_text, (str(self.path), "code ran"))  # type: ignore[return-value]


def _entry(tmp_path: Path, version: int) -> dict[str, object]:
    with sqlite3.connect(tmp_path / REGISTRY_FILE) as db:
        return json.loads(db.execute("SELECT entry FROM versions WHERE id = ?",
                                     (version,)).fetchone()[0])


def _set_entry(tmp_path: Path, version: int, entry: dict[str, object]) -> None:
    with sqlite3.connect(tmp_path / REGISTRY_FILE) as db:
        db.execute("UPDATE versions SET entry = ? WHERE id = ?",
                   (json.dumps(entry, sort_keys=True, separators=(",", ":")), version))


def test_an_edited_artifact_and_digest_are_refused_and_no_code_runs(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    version = register(registry, 2)
    marker = tmp_path / "marker"
    evil = pickle.dumps(_Marker(marker))
    assert not marker.exists()
    entry = _entry(tmp_path, version)
    # 1. the artifact replaced: its digest no longer matches the entry's
    artifact = tmp_path / ARTIFACTS / f"{entry['sha256']}.pkl"
    artifact.write_bytes(evil)
    with pytest.raises(RegistryError, match=f"model version {version} was refused.*sha256"):
        registry.load(version)
    # 2. the entry's digest edited to match: the entry's HMAC no longer matches
    digest = hashlib.sha256(evil).hexdigest()
    (tmp_path / ARTIFACTS / f"{digest}.pkl").write_bytes(evil)
    _set_entry(tmp_path, version, {**entry, "sha256": digest, "bytes": len(evil)})
    with pytest.raises(RegistryError, match=f"model version {version} was refused.*HMAC"):
        registry.load(version)
    with pytest.raises(RegistryError, match=f"model version {version} was refused"):
        registry.versions()
    assert not marker.exists()


def test_promote_and_rollback_walk_the_champion_back(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    a, b, c = (register(registry, n) for n in (1, 2, 3))
    with pytest.raises(RegistryError, match="no earlier version"):
        registry.rollback()
    assert registry.promote(a) is None
    assert registry.promote(b) == a
    assert registry.promote(c) == b
    assert registry.rollback() == (c, b)
    assert registry.rollback() == (b, a)
    assert registry.alias(CHAMPION) == a
    with pytest.raises(RegistryError, match="no earlier version"):
        registry.rollback()
    with pytest.raises(RegistryError, match="no model version 99"):
        registry.promote(99)
    assert registry.alias(CHAMPION) == a


def test_the_champion_follows_registrations_until_chosen_by_hand(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    a = register(registry, 1, follow=True)
    b = register(registry, 2, parent=a, follow=True)
    assert registry.alias(CHAMPION) == b
    registry.promote(a)  # chosen by hand: a version not continuing it does not move it
    register(registry, 3, parent=b, follow=True)
    assert registry.alias(CHAMPION) == a
    d = register(registry, 4, parent=a, follow=True)  # continuing the champion: it follows
    assert registry.alias(CHAMPION) == d
    other = registry.register(model_after(1, "seg-2"), Lineage.of(model_after(1, "seg-2"),
                              "flow"), {}, follow=True)  # a model of new labels replaces it
    assert registry.alias(CHAMPION) == other.id


def test_a_reader_sees_a_change_by_another_connection(tmp_path: Path) -> None:
    reader, writer = Registry(tmp_path), Registry(tmp_path)
    a = register(writer, 1)
    reader.changed()
    assert not reader.changed()
    writer.promote(a)
    assert reader.changed() and reader.alias(CHAMPION) == a


def test_retention_keeps_the_last_n_and_every_version_chosen_by_hand(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_module, "ORPHAN_AGE", -1.0)
    registry = Registry(tmp_path, keep=3)
    first = register(registry, 1, follow=True)
    registry.promote(first)
    ids = [first]
    for n in range(2, 9):  # each continuing the last
        ids.append(register(registry, n, parent=ids[-1], follow=True))
    ids = ids[1:]
    kept = [v.id for v in registry.versions()]
    assert kept == [first, *ids[-3:]]
    assert registry.alias(CHAMPION) == ids[-1]  # it followed the registrations
    assert {p.stem for p in (tmp_path / ARTIFACTS).glob("*.pkl")} == \
        {v.sha256 for v in registry.versions()}


_WRITER = """
import sys
from pathlib import Path
from basketflow.models.classifier import BasketClassifier, classifier_features
from basketflow.models.registry import Lineage, Registry
registry = Registry(Path(sys.argv[1]))
model = BasketClassifier("seg-1")
x = classifier_features({"value": 10.0, "lines": 2, "country": "France"}, None)
print("ready", flush=True)
while True:
    model.learn(x, "small")
    registry.register(model, Lineage.of(model, "flow"), {}, follow=True)
"""


def _writer(tmp_path: Path) -> subprocess.Popen[str]:
    child = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    return child


@pytest.mark.slow
def test_kill_9_mid_write_leaves_only_whole_versions(tmp_path: Path) -> None:
    Registry(tmp_path)
    for delay in (0.05, 0.13, 0.21, 0.3, 0.42):
        writers = [_writer(tmp_path), _writer(tmp_path)]  # two processes at once
        time.sleep(delay)
        for child in writers:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
    registry = Registry(tmp_path)
    versions = registry.versions()
    assert len(versions) >= 5
    for version in versions:
        assert registry.load(version.id).n_learned == version.lineage.n_learned
    assert registry.alias(CHAMPION) in {v.id for v in versions}
