"""What a run of the live flow checks before its dataflow starts, without the dataflow's
libraries.

The checks of :func:`prepare_run` and :func:`check_topics`. Apart from :mod:`basketflow.flows.live` so ``basketflow run``
makes them without importing Bytewax and the flow's steps: it makes them while its
child processes (which import those) start, and they then check nothing again.
"""

from __future__ import annotations

from pathlib import Path

from basketflow.config import Settings
from basketflow.flows.kafka_batches import check_topic_ids
from basketflow.flows.parts import STORE
from basketflow.kafka import DEFAULT_PARTITIONS, ensure_topics
from basketflow.sinks.event_ids import ensure_content_ids
from basketflow.sinks.offline_layout import ensure_whole, store_files
from basketflow.sinks.offline_store import ensure_writable
from basketflow.sinks.online_store import connect

def prepare_run(settings: Settings) -> None:
    """What a run needs before its flow starts: a writable data directory and offline
    store (else :class:`StoreUnwritable`) whose files are whole Parquet (else
    :class:`CorruptFile`: the flow reads back the ids of a day's files) with ids made from
    content (else :class:`~basketflow.sinks.event_ids.OldEventIds`), Redis answering
    (else :class:`~basketflow.sinks.online_store.RedisUnavailable`: checked once here; the
    sinks then wait out an outage), and the topics. Checked here, once, because an error
    inside the running dataflow comes with a Rust panic."""
    assert settings.kafka_bootstrap
    ensure_writable(settings.data_dir, settings.offline_dir)
    ensure_whole(store_files(settings.offline_dir))
    ensure_content_ids(settings.offline_dir)
    if settings.redis_url:
        connect(settings.redis_url).close()
    ensure_topics(settings.kafka_bootstrap,
                  {settings.topic: DEFAULT_PARTITIONS, settings.dead_topic: 1})


def check_topics(settings: Settings, recovery_dir: Path | None, parts: tuple[str, ...],
                 reset: str | None = None) -> None:
    """Before a flow of ``parts`` resumes from ``recovery_dir``: raise
    :class:`~basketflow.flows.kafka_batches.TopicOffsetsLost` when a topic it reads was
    recreated since its state was made (none with ``reset``: the offsets move anyway)."""
    if recovery_dir is None:
        return
    assert settings.kafka_bootstrap
    topics = [settings.topic, *([settings.dead_topic] if STORE in parts else [])]
    check_topic_ids(settings.kafka_bootstrap, topics, recovery_dir, accept=reset is not None)
