"""What basketflow writes is its user's alone: after a session of the command line the
data directory and every folder under it are 0700 and every file 0600 (offline store,
recovery snapshots, the state file with the embedded password, logs), a data directory
made 0755 by an older release becomes 0700 at the next run, and a model checkpoint is
written 0600 whatever the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from basketflow.config import Settings
from tests.cli.commands import basketflow, user_env


def modes(root: Path) -> dict[str, set[str]]:
    """The relative paths under ``root`` whose mode lets anyone but the owner in."""
    found: dict[str, set[str]] = {"dirs": set(), "files": set()}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            if os.stat(Path(folder) / name).st_mode & 0o077:
                found["dirs"].add(str((Path(folder) / name).relative_to(root)))
        for name in files:
            path = Path(folder) / name
            if stat.S_ISREG(path.lstat().st_mode) and path.stat().st_mode & 0o077:
                found["files"].add(str(path.relative_to(root)))
    return found


def test_a_session_leaves_nothing_readable_by_others(settings: Settings, tmp_path: Path
                                                     ) -> None:
    data = settings.data_dir
    data.mkdir(parents=True)
    os.chmod(data, 0o755)  # as an older release left it
    env = user_env(data, settings)
    sample = tmp_path / "sample.csv"
    for args in (("generate", "--rows", "3000", "--seed", "7", "--out", str(sample)),
                 ("replay", str(sample)), ("run", "--stop-at-end"),
                 ("backfill", "--from", str(sample), "--processes", "1")):
        done = basketflow(*args, env=env)
        assert done.returncode == 0, (args, done.stderr)
    assert data.stat().st_mode & 0o777 == 0o700
    assert (data / "recovery").is_dir() and any((data / "recovery").rglob("*"))
    assert any((data / "offline").rglob("*.parquet"))
    assert modes(data) == {"dirs": set(), "files": set()}


def test_the_embedded_servers_state_is_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = user_env(data)
    try:
        assert basketflow("up", env=env).returncode == 0
        assert data.stat().st_mode & 0o777 == 0o700
        assert (data / "services.json").stat().st_mode & 0o777 == 0o600
        assert modes(data) == {"dirs": set(), "files": set()}
    finally:
        basketflow("down", env=env)


def test_a_model_version_and_the_registry_key_are_0600(tmp_path: Path) -> None:
    """Whatever the umask (a library user's), the artifacts a version writes and the key
    that authenticates them are the owner's alone."""
    from basketflow.models.classifier import BasketClassifier
    from basketflow.models.registry import ARTIFACTS, KEY_FILE, Lineage, Registry

    old = os.umask(0o022)
    try:
        registry = Registry(tmp_path / "models")
        model = BasketClassifier(labels_version="v")
        registry.register(model, Lineage.of(model, "flow", None, 1_300_000_000), {})
        registry.close()
    finally:
        os.umask(old)
    written = [*(tmp_path / "models" / ARTIFACTS).iterdir(), tmp_path / "models" / KEY_FILE]
    assert len(written) == 2
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in written)
