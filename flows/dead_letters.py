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

import msgspec
from bytewax.connectors.kafka import KafkaSinkMessage

from basketflow.flows.kafka_batches import RawMessage
from basketflow.schemas.events import Rejection, parse_invoice_date

#: ``(dead_id, ts, rejection)``: the id the offline store dedups on, and the day's time.
DeadLetter = tuple[str, int, Rejection]


def message_id(msg: RawMessage) -> str:
    """``<topic>:<partition>:<offset>``: where a message sits, its identity for dedup."""
    return f"{msg.topic}:{msg.partition}:{msg.offset}"


def line_time(raw: str, fallback: int) -> int:
    """The invoice date of a raw Kaggle line when it can be read, else ``fallback``."""
    try:
        fields = next(csv.reader([raw]))
        return parse_invoice_date(fields[4])
    except (StopIteration, IndexError, ValueError, OverflowError, OSError, csv.Error):
        return fallback


def _received(msg: RawMessage) -> int:
    """The message's broker timestamp in seconds, or now."""
    return msg.timestamp_ms // 1000 if msg.timestamp_ms > 0 else int(time.time())


#: Raw text kept in a dead letter: a huge bad message must not make a dead letter too
#: big for the dead topic (1 MB by default) and stop the flow.
MAX_RAW_CHARS = 10_000


def rejected(msg: RawMessage, rejection: Rejection) -> DeadLetter:
    """A dead letter for a message the flow could not use (its raw text cut to
    :data:`MAX_RAW_CHARS`)."""
    raw = rejection.raw
    if len(raw) > MAX_RAW_CHARS:
        rejection = Rejection(rejection.reason, f"{raw[:MAX_RAW_CHARS]}... [{len(raw):,} chars]",
                              rejection.event_id and rejection.event_id[:MAX_RAW_CHARS],
                              rejection.source)
    return message_id(msg), _received(msg), rejection


#: How the reason of a consumer error's dead letter starts (the error's text follows).
CONSUMER_ERROR = "consumer error: "


def consumer_error(msg: RawMessage) -> DeadLetter:
    """A dead letter for a consumer error, so that it is seen and counted."""
    raw = (msg.value or b"").decode("utf-8", "replace")[:1000]
    return rejected(msg, Rejection(f"{CONSUMER_ERROR}{msg.error}", raw, source="flow"))


def to_dead_message(letter: DeadLetter) -> KafkaSinkMessage[bytes | None, bytes]:
    """A flow-made dead letter as a message on the dead-letter topic."""
    _dead_id, _ts, r = letter
    return KafkaSinkMessage(r.event_id.encode() if r.event_id else None, r.to_json())


def producer_letters(batch: list[RawMessage]) -> list[DeadLetter]:
    """Messages read back from the dead topic -> the DeadLetters the producer wrote (the
    flow's own are stored when made)."""
    letters = []
    for msg in batch:
        if msg.error is not None or msg.quiet:  # a consumer error, or the reader's mark
            continue
        try:
            obj = msgspec.json.decode(msg.value or b"")
            rejection = Rejection(str(obj["reason"]), str(obj.get("raw", "")),
                                  obj.get("event_id"), str(obj.get("source", "producer")))
        except (msgspec.DecodeError, KeyError, TypeError, AttributeError):
            rejection = Rejection("unreadable dead letter",
                                  (msg.value or b"").decode("utf-8", "replace"),
                                  source="unknown")
        if rejection.source != "flow":
            letters.append((message_id(msg), line_time(rejection.raw, _received(msg)),
                            rejection))
    return letters
