"""Each response in one write (basketflow.serving.http), on a fake transport and a real
event loop; the real server's answers are tests/serving/test_reads.py's."""

from __future__ import annotations

import asyncio

from basketflow.serving.http import CoalescedTransport


class Transport:
    """Records what is written and whether it was closed."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> str:
        return f"info {name}"


def test_the_writes_of_one_turn_leave_as_one() -> None:
    async def respond(transport: CoalescedTransport, raw: Transport) -> list[bytes]:
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.writelines([b"{", b"}"])
        kept = list(raw.writes)
        await asyncio.sleep(0)
        transport.write(b"next")
        await asyncio.sleep(0)
        return kept

    raw = Transport()
    loop = asyncio.new_event_loop()
    try:
        kept = loop.run_until_complete(respond(CoalescedTransport(raw, loop), raw))
    finally:
        loop.close()
    assert kept == []
    assert raw.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}", b"next"]


def test_closing_sends_what_is_kept_first_and_nothing_after() -> None:
    raw = Transport()
    loop = asyncio.new_event_loop()
    try:
        transport = CoalescedTransport(raw, loop)
        transport.write(b"bye")
        transport.close()
        transport.write(b"late")
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()
    assert raw.writes == [b"bye"] and raw.closed


def test_the_rest_is_the_wrapped_transports() -> None:
    loop = asyncio.new_event_loop()
    try:
        transport = CoalescedTransport(Transport(), loop)
        assert transport.get_extra_info("peername") == "info peername"
        assert not transport.is_closing()
    finally:
        loop.close()
