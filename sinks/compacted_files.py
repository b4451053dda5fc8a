"""Which files of a day partition count, once some were compacted: the reading rule that
keeps readers from counting a row twice.

A compacted file (:mod:`basketflow.sinks.compaction`) is named ``compact-<digest>.parquet``
and names, in its Parquet footer's key-value metadata under :data:`REPLACES_KEY`, every
file of its folder whose rows it holds (a JSON list of file names, those of any compacted
file it merged included). It is renamed into place before any of them is deleted, so for
a moment, or after a kill, both are there: a reader then leaves out every file that a
compacted file present replaces. So a reader counts either the old files or the new one,
never both.

The footers are read only when a folder holds a compacted file and other files (a
compaction between its rename and its deletes, or files written to the day since); a
folder of one compacted file, or of none, costs nothing more to list.

>>> is_compacted(Path("compact-1f2e.parquet")), is_compacted(Path("part-1f2e.parquet"))
(True, False)
>>> counted([Path("d/part-a.parquet"), Path("d/part-b.parquet")])  # nothing compacted
[PosixPath('d/part-a.parquet'), PosixPath('d/part-b.parquet')]
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

#: The name of every compacted file starts so.
COMPACTED_PREFIX = "compact-"
#: The footer metadata key listing the file names a compacted file replaces.
REPLACES_KEY = b"basketflow.replaces"


def is_compacted(path: Path) -> bool:
    """Whether ``path`` is a compacted file (by its name)."""
    return path.name.startswith(COMPACTED_PREFIX)


def replaced_by(path: Path) -> set[str]:
    """The names of the files a compacted file replaces, read from its footer (an
    unreadable footer replaces nothing: the file is then reported damaged by the checks
    every job runs, rather than silently hiding others)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:
        metadata = pq.read_schema(path).metadata or {}
        return set(json.loads(metadata.get(REPLACES_KEY, b"[]")))
    except (OSError, pa.ArrowException, ValueError):
        return set()


def counted(files: Sequence[Path]) -> list[Path]:
    """The files of one partition folder that readers count: all but those a compacted
    file among them replaces (in the given order)."""
    compacted = [p for p in files if is_compacted(p)]
    if not compacted or len(files) == 1:
        return list(files)
    hidden: set[str] = set()
    for path in compacted:
        hidden |= replaced_by(path)
    return [p for p in files if p.name not in hidden]
