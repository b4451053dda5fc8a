"""Writes under the data directory that fail: an OS error (full disk, a file where a
directory must be, no permission) becomes :class:`StoreUnwritable`, whose one line names
the path and says what to do.

Apart from the offline store's module so that what writes before the flow's libraries
are imported (the run lock, as ``basketflow run`` starts its processes) does not import
pyarrow for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from basketflow.errors import BasketflowError
from basketflow.offline_uri import StoreDir


class StoreUnwritable(BasketflowError, OSError):
    """The data directory cannot be written (full disk, a file in the way, no permission).

    The message names the path and the OS error, and says what to do. Raised by every
    write of the offline store, of the model registry's artifacts and by the start-up check
    (:func:`~basketflow.sinks.offline_store.ensure_writable`); it stops the flow before the
    offsets past the unwritten rows are committed, so the next run writes them.
    """


def unwritable(path: StoreDir, error: OSError) -> StoreUnwritable:
    """The :class:`StoreUnwritable` for an OS error met while writing ``path``.

    >>> from pathlib import Path
    >>> err = unwritable(Path("/data/offline/events"), NotADirectoryError(20, "Not a directory"))
    >>> err.errno, str(err).split(": free")[0]
    (20, 'cannot write /data/offline/events (Not a directory)')
    """
    where = error.filename if error.filename is not None else path
    reason = error.strerror or str(error)
    exc = StoreUnwritable(
        f"cannot write {where} ({reason}): free space on that disk or fix the directory "
        "(a file in the way, permissions), then run the same command again; nothing is "
        "lost, the input offsets past unwritten data were not committed")
    exc.errno = error.errno
    return exc


@contextmanager
def writing(path: StoreDir) -> Iterator[None]:
    """Turn an OS error raised while writing under ``path`` into :class:`StoreUnwritable`."""
    try:
        yield
    except StoreUnwritable:
        raise
    except OSError as exc:
        raise unwritable(path, exc) from exc
