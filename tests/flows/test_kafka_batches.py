"""A run to the end of the topic (``stop_at_end``) reads full batches, whatever the
timing, so the order in which the flow sees the partitions' batches (the worker polls
the partitions in turn), and with it every live score (the one scoring step's model
learns as it goes), is the same every run over the same topic."""

from __future__ import annotations

from confluent_kafka import Producer

from basketflow.flows.event_clock import ENDED
from basketflow.flows.kafka_batches import KafkaBatchSource
from basketflow.kafka import consumer_config, ensure_topics, producer_config

PARTITIONS = 3


def _polled(source: KafkaBatchSource) -> list[tuple[int, int]]:
    """(partition, messages) of each non-empty batch, the partitions polled in turn as
    one Bytewax worker polls them; the last batch of each ends with the mark that the
    partition was read to its end, for the flow's clock."""
    readers = {i: source.build_part("in", part, None)
               for i, part in enumerate(source.list_parts())}
    polled: list[tuple[int, int]] = []
    ends: dict[int, bool] = {}
    try:
        while readers:
            for i, reader in list(readers.items()):
                try:
                    for batch in reader.next_batch():
                        messages = [m for m in batch if not m.quiet]
                        if messages:
                            polled.append((i, len(messages)))
                        ends[i] = batch[-1].quiet == ENDED
                except StopIteration:
                    assert ends.get(i), f"partition {i} ended without its mark"
                    reader.close()
                    del readers[i]
    finally:
        for reader in readers.values():
            reader.close()
    return polled


def test_a_run_to_the_end_reads_full_batches_in_turn(broker: str) -> None:
    topic = "full-batches"
    ensure_topics(broker, {topic: PARTITIONS})
    producer = Producer(producer_config(broker))
    for i in range(PARTITIONS * 2_500):
        producer.produce(topic, f"message {i}".encode(), partition=i % PARTITIONS)
    producer.flush()
    expected = [(p, 2_000) for p in range(PARTITIONS)] + [(p, 500) for p in range(PARTITIONS)]
    for _ in range(3):
        source = KafkaBatchSource(broker, topic, consumer_config(broker), stop_at_end=True,
                                  batch_size=2_000)
        assert _polled(source) == expected
