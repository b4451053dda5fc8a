"""docker-compose.yml wires the same settings as the code reads (no Docker engine needed).

The file is parsed, not run: the test checks that the services exist, that flow and replay
use exactly the environment variables :mod:`basketflow.config` reads, that their addresses
point at the kafka and redis services, and that their commands are real CLI subcommands;
and that Prometheus scrapes the ports the flow and the server serve metrics on, and
Grafana's provisioned dashboard asks only for metrics they export.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from basketflow.config import ENV_DATA_DIR, ENV_KAFKA, ENV_REDIS
from basketflow.serving.auth import ENV_API_KEYS

COMPOSE_FILE = Path(__file__).resolve().parents[1] / "docker-compose.yml"
APPS = {"flow": "run", "replay": "replay", "serve": "serve"}  # compose service -> basketflow subcommand


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _env(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict (compose allows a mapping or a KEY=VALUE list)."""
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _command(service: dict[str, Any]) -> str:
    command = service["command"]
    return command if isinstance(command, str) else shlex.join(command)


def _kafka_env(compose: dict[str, Any]) -> dict[str, str]:
    return _env(compose["services"]["kafka"])


def test_services_exist(compose: dict[str, Any]) -> None:
    assert {"kafka", "redis", "flow", "replay"} <= set(compose["services"])
    assert compose["services"]["kafka"]["image"] == "apache/kafka:3.8.0"
    assert compose["services"]["redis"]["image"].startswith("redis:7")


def test_kafka_is_single_node_kraft_without_auto_create(compose: dict[str, Any]) -> None:
    env = _kafka_env(compose)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "kafka-topics.sh" in " ".join(compose["services"]["kafka"]["healthcheck"]["test"])


def test_redis_keeps_an_append_only_file(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert "--appendonly yes" in _command(redis)
    assert any(str(v).endswith(":/data") for v in redis["volumes"])
    assert "ping" in " ".join(redis["healthcheck"]["test"])


@pytest.mark.parametrize("app", sorted(APPS))
def test_apps_use_the_variables_config_reads(compose: dict[str, Any], app: str) -> None:
    env = _env(compose["services"][app])
    assert set(env) - {ENV_API_KEYS} == {ENV_KAFKA, ENV_REDIS, ENV_DATA_DIR}

    advertised = {
        urlparse(listener).netloc for listener in _kafka_env(compose)["KAFKA_ADVERTISED_LISTENERS"].split(",")
    }
    assert env[ENV_KAFKA] in advertised
    assert env[ENV_KAFKA].split(":")[0] == "kafka"  # the in-network listener, not the host one

    assert urlparse(env[ENV_REDIS]).hostname == "redis"
    volumes = [str(v) for v in compose["services"][app]["volumes"]]
    assert any(v.endswith(":" + env[ENV_DATA_DIR]) for v in volumes)


@pytest.mark.parametrize("app", sorted(APPS))
def test_apps_wait_for_healthy_servers(compose: dict[str, Any], app: str) -> None:
    depends = compose["services"][app]["depends_on"]
    for server in ("kafka", "redis"):
        assert depends[server]["condition"] == "service_healthy"
        assert "healthcheck" in compose["services"][server]


@pytest.mark.parametrize("app", sorted(APPS))
def test_apps_run_real_subcommands(compose: dict[str, Any], app: str) -> None:
    assert f"basketflow {APPS[app]}" in _command(compose["services"][app])
    if importlib.util.find_spec("basketflow.cli") is None:  # written in parallel: skip until it exists
        pytest.skip("basketflow/cli.py does not exist yet")
    from basketflow.cli import cli  # once it exists, an import error is a real failure

    assert APPS[app] in cli.commands


def test_the_topic_has_a_partition_for_each_cluster_process(compose: dict[str, Any]) -> None:
    """kafka-init creates the topics with basketflow's configs before the apps start:
    the events topic with 4 partitions, at least one for each process of the flow's
    cluster, so every process reads a share."""
    from basketflow.config import DEFAULT_DEAD_TOPIC, DEFAULT_TOPIC
    from basketflow.kafka import TOPIC_CONFIG
    services = compose["services"]
    script = shlex.split(_command(services["kafka-init"]))[-1]
    pairs = re.search(r"for t in (.*?);", script)
    assert pairs is not None, script
    partitions = dict(p.split(":") for p in pairs.group(1).split())
    assert partitions == {DEFAULT_TOPIC: "4", DEFAULT_DEAD_TOPIC: "1"}
    assert all(f"--config {k}={v}" in script for k, v in TOPIC_CONFIG.items())
    assert int(_option(_command(services["flow"]), "--processes")) <= 4
    for app in ("flow", "replay"):
        assert services[app]["depends_on"]["kafka-init"]["condition"] == \
            "service_completed_successfully"


def test_replay_reads_the_mounted_input(compose: dict[str, Any]) -> None:
    replay = compose["services"]["replay"]
    assert any(str(v).startswith("./input:/data") for v in replay["volumes"])
    assert "/data/data.csv" in _command(replay)


DEPLOY = COMPOSE_FILE.parent / "deploy"
#: The metric families the flow and the server export (the flow's are checked on a
#: running flow by tests/flows/test_flow_metrics.py).
HTTP_FAMILIES = {"basketflow_http_requests", "basketflow_http_request_duration_seconds"}


def _option(command: str, name: str) -> str:
    """The value of option ``name`` in the basketflow command a ``sh -c "..."`` runs."""
    words = shlex.split(shlex.split(command)[-1].split("&&")[-1])
    return words[words.index(name) + 1]


def test_prometheus_scrapes_the_flow_and_the_server(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in \
        services["prometheus"]["volumes"]
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    targets = {job["job_name"]: [t for c in job["static_configs"] for t in c["targets"]]
               for job in config["scrape_configs"]}
    port = int(_option(_command(services["flow"]), "--metrics-port"))
    processes = int(_option(_command(services["flow"]), "--processes"))
    assert targets["basketflow-flow"] == [f"flow:{port + i}" for i in range(processes)]
    assert targets["basketflow-serve"] == [f"serve:{_option(_command(services['serve']), '--port')}"]


def test_grafana_dashboard_asks_for_exported_metrics(compose: dict[str, Any]) -> None:
    from tests.flows.test_flow_metrics import FLOW_FAMILIES
    grafana = compose["services"]["grafana"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    source = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml")
                            .read_text())["datasources"][0]
    assert source["url"] == "http://prometheus:9090"
    dashboard = json.loads((DEPLOY / "grafana/dashboards/basketflow.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    names = {re.sub(r"_(total|bucket|sum|count)$", "", n)
             for e in exprs for n in re.findall(r"\b(?:basketflow|bytewax)_[a-z_]+", e)}
    assert names and names <= FLOW_FAMILIES | HTTP_FAMILIES, names - FLOW_FAMILIES


def test_kubernetes_statefulset_runs_one_cluster_process_per_pod() -> None:
    """deploy/kubernetes: the pod's ordinal is its process id, and the address list names
    every pod of the StatefulSet through its headless Service, in ordinal order."""
    from basketflow.config import ENV_OFFLINE_STORE
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "flow-cluster.yaml").read_text()))
    kinds = {doc["kind"]: doc for doc in docs}
    service, sets = kinds["Service"], kinds["StatefulSet"]
    assert service["spec"]["clusterIP"] == "None"
    spec = sets["spec"]
    name, headless = sets["metadata"]["name"], spec["serviceName"]
    assert headless == service["metadata"]["name"]
    container = spec["template"]["spec"]["containers"][0]
    command = container["command"][-1]
    words = shlex.split(command.split("&&")[-1])
    assert words[:3] == ["exec", "basketflow", "run"]
    assert words[words.index("--process-id") + 1] == "$POD_INDEX"
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == \
        "metadata.labels['apps.kubernetes.io/pod-index']"
    addresses = words[words.index("--addresses") + 1].split(",")
    assert addresses == [f"{name}-{i}.{headless}:2101" for i in range(spec["replicas"])]
    assert {"KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", ENV_DATA_DIR, ENV_OFFLINE_STORE} <= set(env)
    from basketflow.cli import cli
    assert {"--process-id", "--addresses"} <= {
        opt for param in cli.commands["run"].params for opt in getattr(param, "opts", [])}
