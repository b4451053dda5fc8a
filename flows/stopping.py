"""Stop a running flow cleanly on SIGINT (Ctrl-C) or SIGTERM.

Bytewax checks Python's signal handlers while a dataflow runs; the default SIGINT handler
raises ``KeyboardInterrupt`` there, which Bytewax turns into a panic of every worker
thread: hundreds of lines of Rust backtrace for what is an ordinary stop. While a command
runs under :func:`stop_on_signals`, the first SIGINT or SIGTERM only records the request;
every Kafka source partition (:mod:`basketflow.flows.kafka_batches`) then ends as at the
end of its partition, so the dataflow finishes its epoch the normal way: the sinks flush,
the recovery snapshot records the offsets read, and the next run resumes there. A request
that comes while the command is still starting stops the flow as soon as it starts. A
second signal stops the process at once (exit status 130), which recovery also makes
safe: the next run re-reads from the last snapshot.

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

SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_AT_ONCE = 128 + signal.SIGINT
_requests: list[int] = []


def requested() -> bool:
    """Whether a stop was asked for since :func:`stop_on_signals` began."""
    return bool(_requests)


def requested_signal() -> int | None:
    """The signal that asked for the stop (None: none did)."""
    return _requests[0] if _requests else None


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """First signal: record the request; a second: stop now."""
    if not _requests:
        _requests.append(signum)
        return
    sys.stderr.write("stopped at once: the next run resumes from the last snapshot\n")
    sys.stderr.flush()
    os._exit(EXIT_AT_ONCE)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Run the block with SIGINT and SIGTERM asking for a stop (see the module); the
    previous handlers are back afterwards. Within another such block it changes nothing
    (a request made in the outer one stands); outside the main thread, where Python
    cannot install handlers, neither."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is _on_signal):
        yield
        return
    _requests.clear()
    previous = {s: signal.signal(s, _on_signal) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
