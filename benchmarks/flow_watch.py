"""What a running ``basketflow run`` holds, read from /proc and the offline store: the
resident memory and open files of each flow process, events consumed per part, Parquet
files per event day. Shared by ``memory.py`` and ``soak.py``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from basketflow.app.flow_processes import child_env
from basketflow.app.status import consumed
from basketflow.config import Settings
from basketflow.flows.progress import SERVE_PROGRESS

PARTS = {"serve": (SERVE_PROGRESS,), "store": ("",)}


def start_run(settings: Settings, *args: str, tree: Path | None = None) -> subprocess.Popen[bytes]:
    """``basketflow run ARGS`` with the code of ``tree`` (None: this one)."""
    env = child_env(settings)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(tree), env.get("PYTHONPATH", "")])
    return subprocess.Popen([sys.executable, "-m", "basketflow.cli", "run", *args], env=env,
                            stdout=subprocess.PIPE, cwd=tree or Path.cwd())


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (the run's part processes)."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _part_of(pid: int) -> str | None:
    """``serve`` or ``store`` for a part process, from its command line."""
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    for i, word in enumerate(words[:-1]):
        if word == b"--part":
            return words[i + 1].decode()
    return None


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MB (0 once it has gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def open_files(pid: int) -> int:
    """File descriptors ``pid`` holds open."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


@dataclass
class Sample:
    """One look at a running flow: per part, events consumed, RSS in MB, open files."""

    events: dict[str, int]
    rss: dict[str, float]
    files: dict[str, int]


def sample(run: subprocess.Popen[bytes], settings: Settings) -> Sample:
    """What each part of ``run`` holds now."""
    pids = {part: pid for pid in children(run.pid) if (part := _part_of(pid))}
    events = {}
    for part, progress in PARTS.items():
        try:
            events[part] = consumed(settings.redis_url, settings.prefix, settings.topic,
                                    progress)
        except Exception:  # the progress hash is not there yet
            events[part] = 0
    return Sample(events, {p: rss_mb(pid) for p, pid in pids.items()},
                  {p: open_files(pid) for p, pid in pids.items()})


def parquet_files_per_day(offline: Path) -> dict[str, float]:
    """Per offline folder (events, features/customer, ...): Parquet files per event day."""
    out = {}
    for folder in sorted({f.parent.parent for f in offline.glob("**/date=*/*.parquet")}):
        days = Counter(f.parent.name for f in folder.glob("date=*/*.parquet"))
        out[str(folder.relative_to(offline))] = sum(days.values()) / max(len(days), 1)
    return out
