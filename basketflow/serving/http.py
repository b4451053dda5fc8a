"""uvicorn's HTTP/1.1 protocol (httptools) with each response sent in one write.

uvicorn writes a response's status line and headers when the application sends
``http.response.start`` and its body at ``http.response.body``: two writes to the
socket, so two ``send`` system calls and two TCP segments per response, and a client
that reads the head and then the body may wake twice. :class:`HttpToolsProtocol` hands
uvicorn a transport (:class:`CoalescedTransport`) that keeps the writes of one turn of
the event loop and sends them together at its end: a response's head and body are sent
in the same turn (nothing awaits between them), so they leave in one write.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as UvicornHttpTools


class CoalescedTransport:
    """A transport whose writes within one turn of ``loop`` are sent as one, at the end
    of the turn; closing sends what is kept first. Everything else is the wrapped
    transport's."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop,
                 ) -> None:
        self._transport, self._loop = transport, loop
        self._kept: list[bytes] = []

    def write(self, data: bytes) -> None:
        """Keep ``data`` until the end of this turn of the loop."""
        if not self._kept:
            self._loop.call_soon(self._send)
        self._kept.append(data)

    def writelines(self, lines: list[bytes]) -> None:
        """Keep each of ``lines``, in order (as :meth:`write`)."""
        for data in lines:
            self.write(data)

    def close(self) -> None:
        """Send what is kept, then close."""
        self._send()
        self._transport.close()

    def _send(self) -> None:
        """Send what is kept in one write (nothing once the transport is closing)."""
        if self._kept:
            data = b"".join(self._kept)
            self._kept.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HttpToolsProtocol(UvicornHttpTools):
    """uvicorn's httptools protocol, writing through a :class:`CoalescedTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescedTransport(transport, self.loop))  # type: ignore[arg-type]
