"""Events pushed one request at a time (``basketflow serve``'s ``POST /events``), sent as
``replay`` sends a file's lines: a valid line to the events topic keyed by its entity, a
rejected one to the dead-letter topic with its reason, each request's messages delivered
(or refused) before it is answered.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from confluent_kafka import KafkaError, Message, Producer

from basketflow.kafka import DEFAULT_PARTITIONS, BrokerUnavailable, ensure_topics, producer_config
from basketflow.schemas.events import Rejection, Transaction, encode_event


class EventPush:
    """One producer for the life of a server, shared by its requests (a lock keeps
    each request's delivery count its own). The topics are made at the first push."""

    def __init__(self, bootstrap: str, topic: str, dead_topic: str,
                 timeout: float = 5.0) -> None:
        self.bootstrap, self.topic, self.dead_topic = bootstrap, topic, dead_topic
        self.timeout = timeout
        self._producer: Producer | None = None
        self._lock = threading.Lock()
        self._failed: list[str] = []

    def _ready(self) -> Producer:
        if self._producer is None:
            ensure_topics(self.bootstrap, {self.topic: DEFAULT_PARTITIONS,
                                           self.dead_topic: 1}, self.timeout)
            self._producer = Producer(producer_config(self.bootstrap) | {
                "linger.ms": 1, "message.timeout.ms": int(self.timeout * 1000),
                "on_delivery": self._delivered})
        return self._producer

    def _delivered(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self._failed.append(str(err))

    def send(self, items: Sequence[Transaction | Rejection]) -> None:
        """Send every item (valid to the topic, rejected to the dead topic) and wait
        until the broker has them; :class:`BrokerUnavailable` when it does not take them
        all within the timeout."""
        with self._lock:
            producer = self._ready()
            self._failed.clear()
            for item in items:
                if isinstance(item, Transaction):
                    producer.produce(self.topic, encode_event(item), item.entity_id)
                else:
                    producer.produce(self.dead_topic, item.to_json(), item.event_id)
            left = producer.flush(self.timeout)
            if left or self._failed:
                raise BrokerUnavailable(
                    f"the broker at {self.bootstrap} did not take {left or len(self._failed)}"
                    f" of {len(items)} message(s) within {self.timeout:g} s"
                    + (f" ({self._failed[0]})" if self._failed else ""))

    def close(self) -> None:
        """Deliver what is pending (up to the timeout)."""
        if self._producer is not None:
            self._producer.flush(self.timeout)
