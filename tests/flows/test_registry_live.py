"""The model registry under the real ``basketflow run``: a promote reaches a tailing flow
without a restart, and a flow killed with SIGKILL while it registers versions leaves
only whole versions, which the next run continues."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from basketflow.app.flow_processes import child_env
from basketflow.app.model_registry import promote, train
from basketflow.app.status import consumed
from basketflow.config import Settings
from basketflow.models.aliases import CHAMPION
from basketflow.models.registry import Registry, Version, registry_dir
from basketflow.producers.replay import replay
from tests.labelled_store import labelled


def run(settings: Settings, *args: str) -> subprocess.Popen[str]:
    """``basketflow run ARGS`` in the background, its output captured."""
    return subprocess.Popen([sys.executable, "-m", "basketflow.cli", "run", *args],
                            env=child_env(settings), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def flow_versions(settings: Settings) -> list[Version]:
    path = registry_dir(settings.data_dir)
    if not (path / "registry.sqlite").exists():
        return []
    return [v for v in Registry(path).versions() if v.lineage.source == "flow"]


def wait_for(condition, seconds: float = 180) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.mark.slow
def test_a_promote_reaches_a_tailing_flow_without_a_restart(
        settings: Settings, tmp_path: Path) -> None:
    assert settings.kafka_bootstrap and settings.redis_url
    source = labelled(settings, tmp_path)
    replay(source, settings.kafka_bootstrap, settings.topic, settings.dead_topic,
           limit=6_000)
    log = tmp_path / "run.log"
    with log.open("w") as err:
        flow = subprocess.Popen([sys.executable, "-m", "basketflow.cli", "run",
                                 "--one-process"], env=child_env(settings),
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_for(lambda: consumed(settings.redis_url or "", settings.prefix,
                                  settings.topic, ("",)) >= 6_000)
        chosen = train(settings, date(2011, 2, 28)).version.version  # not the champion
        promote(settings, chosen.id)
        promoted = time.monotonic()
        replay(source, settings.kafka_bootstrap, settings.topic, settings.dead_topic)
        wait_for(lambda: f"champion {chosen.id} adopted" in log.read_text())
        waited = time.monotonic() - promoted
    finally:
        flow.send_signal(signal.SIGTERM)
        flow.wait(timeout=120)
    assert flow.returncode == 0, log.read_text()[-3000:]
    # adopted with the first events after the promote: the replay's, within its time
    assert waited < 60, waited
    registry = Registry(registry_dir(settings.data_dir))
    continued = [v for v in flow_versions(settings) if v.lineage.parent == chosen.id]
    if continued:  # it went on from the promoted version's weights
        assert continued[0].lineage.n_learned == chosen.lineage.n_learned + 100
        assert registry.alias(CHAMPION) == flow_versions(settings)[-1].id


@pytest.mark.slow
def test_a_flow_killed_while_it_registers_leaves_whole_versions(
        settings: Settings, tmp_path: Path) -> None:
    assert settings.kafka_bootstrap
    source = labelled(settings, tmp_path)
    replay(source, settings.kafka_bootstrap, settings.topic, settings.dead_topic)
    flow = run(settings, "--stop-at-end", "--max-batch", "200")
    wait_for(lambda: len(flow_versions(settings)) >= 1 or flow.poll() is not None)
    os.kill(flow.pid, signal.SIGKILL)  # its two parts die with it
    flow.wait()
    registry = Registry(registry_dir(settings.data_dir))
    before = registry.versions()
    for version in before:
        assert registry.load(version.id).n_learned == version.lineage.n_learned
    done = run(settings, "--stop-at-end")
    _out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err[-3000:]
    after = registry.versions()
    # Kept as they were; more only if the kill came before the last one was registered
    # (on a busy machine the first run may have registered all its versions by then).
    assert after[:len(before)] == before
    for version in after:
        assert registry.load(version.id).n_learned == version.lineage.n_learned
        assert version.lineage.parent is None or version.lineage.parent < version.id
    assert registry.alias(CHAMPION) == after[-1].id
