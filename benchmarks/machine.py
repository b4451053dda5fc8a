"""The machine a benchmark ran on, printed with its figures."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / \
    "online_retail_2010-12_to_2011-09.csv.gz"


def describe() -> str:
    """One line: OS, CPU model and count, memory, Python."""
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (f"{platform.system()} {platform.release()}, {cpu} x{os.cpu_count()}{mem}, "
            f"Python {sys.version.split()[0]}")
