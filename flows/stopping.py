"""Stop a running flow cleanly on SIGINT (Ctrl-C) or SIGTERM.

Bytewax checks Python's signal handlers while a dataflow runs; the default SIGINT handler
raises ``KeyboardInterrupt`` there, which Bytewax turns into a panic of every worker
thread: hundreds of lines of Rust backtrace for what is an ordinary stop. While a flow
runs under :func:`stop_on_signals`, the first SIGINT or SIGTERM only sets a flag instead;
every Kafka source partition (:mod:`basketflow.flows.kafka_batches`) then ends as at the
end of its partition, so the dataflow finishes its epoch the normal way: the sinks flush,
the recovery snapshot records the offsets read, and the next run resumes there. A second
signal stops the process at once (exit status 130), which recovery also makes safe: the
next run re-reads from the last snapshot.

>>> requested()
False
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_requested = threading.Event()
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def requested() -> bool:
    """Whether a stop was asked for since the flow started."""
    return _requested.is_set()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """First signal: ask the flow to stop; a second: stop now."""
    if not _requested.is_set():
        _requested.set()
        return
    sys.stderr.write("stopped at once: the next run resumes from the last snapshot\n")
    sys.stderr.flush()
    os._exit(128 + signal.SIGINT)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Run the block with SIGINT and SIGTERM asking the flow to stop (see the module);
    the previous handlers are back afterwards. Outside the main thread, where Python
    cannot install handlers, it changes nothing."""
    _requested.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _on_signal) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
