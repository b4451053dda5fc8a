"""A broker outage under a running flow (issue #20, item 6): one line when it starts, one
when it ends, the outage in `status`, and none of librdkafka's own lines (about 140 a
second before). The embedded broker comes back empty, so the flow then stops with one
`Error:` line that says the topic is gone (item 1), instead of waiting without a word.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

from tests.test_end_to_end import basketflow

from basketflow.app.flow_processes import child_env
from basketflow.app.services import start_broker, stop_service
from basketflow.app.status import consumed
from basketflow.config import Settings
from basketflow.producers.synthetic import write_csv
from basketflow.sinks.flow_health import read_health


def test_broker_outage_is_one_line_each_way_and_in_status(settings: Settings,
                                                           tmp_path: Path) -> None:
    broker = start_broker(tmp_path / "own-broker")
    try:
        own = replace(settings, kafka_bootstrap=broker.address)
        path = tmp_path / "events.csv"
        write_csv(path, rows=500, seed=5, start=date(2011, 3, 1), end=date(2011, 3, 8))
        sent = basketflow(own, "replay", str(path))["sent"]
        flow = subprocess.Popen([sys.executable, "-m", "basketflow.cli", "run",
                                 "--one-process", "--snapshot-interval", "0.5"],
                                env=child_env(own), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while consumed(own.redis_url or "", own.prefix, own.topic, parts=("",)) < sent:
            assert flow.poll() is None and time.monotonic() < deadline, flow.stderr.read()  # type: ignore[union-attr]
            time.sleep(0.1)

        os.kill(broker.pid, signal.SIGKILL)
        stop_service(broker)  # reaps it
        time.sleep(4)
        health = read_health(own.data_dir) or {}
        assert health.get("broker") == "down", health
        status = subprocess.run([sys.executable, "-m", "basketflow.cli", "status", "--json"],
                                env=child_env(own), capture_output=True, text=True,
                                timeout=60)
        notes = json.loads(status.stdout)["flow"]["notes"]
        assert any("the broker unreachable since" in note for note in notes), notes

        broker = start_broker(tmp_path / "own-broker", port=broker.port)  # empty
        _, err = flow.communicate(timeout=60)
        assert flow.returncode == 1, err[-3000:]
        lines = err.splitlines()
        assert not [line for line in lines if line.startswith("%")], err[-3000:]
        assert len([line for line in lines if "broker" in line and "is unreachable" in line]) == 1, err
        assert len([line for line in lines if "broker" in line and "is back after" in line]) == 1, err
        errors = [line for line in lines if line.startswith("Error:")]
        assert len(errors) == 1 and "no longer exists" in errors[0], err[-3000:]
        assert len(lines) < 15, err  # not a flood
        health = read_health(own.data_dir) or {}
        assert health.get("broker") == "up" and health.get("broker_last_outage_seconds"), health
    finally:
        stop_service(broker)
