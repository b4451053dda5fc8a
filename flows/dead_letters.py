"""Dead letters: rejected lines and messages, on the dead topic and in the offline store.

Two kinds reach the dead-letter topic: lines the producer could not parse
(``source="producer"``) and messages the flow could not decode (``source="flow"``). The
flow stores both offline (``<offline>/dead/``) so the daily report can count rejected
lines while the flow is stopped: its own as it rejects them, keyed by the position of the
bad message, and the producer's by reading the dead topic, keyed by their position there.
Either way a dead letter stored twice (after a resume) is stored once.
"""

from __future__ import annotations

import csv
import time
from typing import Any

import orjson
from bytewax.connectors.kafka import KafkaError, KafkaSinkMessage

from schemas.events import Rejection, decode_event, parse_invoice_date

#: ``(dead_id, ts, rejection)``: the id the offline store dedups on, and the day's time.
DeadLetter = tuple[str, int, Rejection]


def message_id(msg: Any) -> str:
    """``<topic>:<partition>:<offset>``: where a message sits, its identity for dedup."""
    return f"{msg.topic}:{msg.partition}:{msg.offset}"


def line_time(raw: str, fallback: int) -> int:
    """The invoice date of a raw Kaggle line when it can be read, else ``fallback``."""
    try:
        fields = next(csv.reader([raw]))
        return parse_invoice_date(fields[4])
    except (StopIteration, IndexError, ValueError, OverflowError, OSError, csv.Error):
        return fallback


def _received(msg: Any) -> int:
    """The message's broker timestamp in seconds, or now."""
    kind, millis = msg.timestamp or (0, 0)
    return millis // 1000 if kind and millis > 0 else int(time.time())


def decode_message(msg: Any) -> Any:
    """A source message -> its Transaction, or a DeadLetter saying why it is not one."""
    if isinstance(msg, KafkaError):
        inner = msg.msg
        rejection = Rejection(f"consumer error: {msg.err}", repr(inner.value)[:1000],
                              source="flow")
        return message_id(inner), _received(inner), rejection
    decoded = decode_event(msg.value)
    if isinstance(decoded, Rejection):
        return message_id(msg), _received(msg), decoded
    return decoded


def to_dead_message(letter: DeadLetter) -> KafkaSinkMessage[bytes | None, bytes]:
    """A flow-made dead letter as a message on the dead-letter topic."""
    _dead_id, _ts, r = letter
    return KafkaSinkMessage(r.event_id.encode() if r.event_id else None, r.to_json())


def producer_letter(msg: Any) -> DeadLetter | None:
    """A message read back from the dead topic -> a DeadLetter to store, when the producer
    wrote it (the flow's own are stored when made); None otherwise."""
    if isinstance(msg, KafkaError):
        return None
    try:
        obj = orjson.loads(msg.value or b"")
        rejection = Rejection(str(obj["reason"]), str(obj.get("raw", "")),
                              obj.get("event_id"), str(obj.get("source", "producer")))
    except (orjson.JSONDecodeError, KeyError, TypeError):
        rejection = Rejection("unreadable dead letter",
                              (msg.value or b"").decode("utf-8", "replace"), source="unknown")
    if rejection.source == "flow":
        return None
    return message_id(msg), line_time(rejection.raw, _received(msg)), rejection
