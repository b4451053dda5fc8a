"""The project file ``basketflow.yaml``: found by walking up like git, every key applied,
the environment over it, today's defaults without it, one ``Error:`` line naming the
file, line and key for a bad one; ``basketflow init`` writes a project every command
then reads, and a command run inside the project uses its servers and prefix."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from basketflow.app.flow_processes import child_env
from basketflow.app.project import ProjectExists, init_project
from basketflow.config import (
    ENV_OFFLINE_URI,
    DEFAULT_ALLOWED_LATENESS_S,
    ENV_OF_KEY,
    ENV_PREFIX,
    ENV_REDIS,
    Settings,
    load_settings,
)
from basketflow.errors import BasketflowError
from basketflow.offline_uri import StorePath
from basketflow.project_file import FILE_NAME, ProjectFileError, find_project_file
from basketflow.schemas.expectations import configured
from basketflow.schemas.features import registry
from basketflow.sinks.online_store import RedisOnlineStore, connect
from tests.cli.commands import basketflow, error_lines, user_env

FULL = """\
data_dir: state
offline_store: file:///srv/offline
kafka: broker:9092
redis: redis://cache:6379/2
topic: orders
dead_topic: orders.dead
prefix: shop
feature_repository: defs
allowed_lateness: 600
"""

LATENESS = "line 1: 'allowed_lateness' (how late an event may be and still change features)"


@pytest.fixture(autouse=True)
def no_settings_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without any setting in the environment."""
    for name in ENV_OF_KEY.values():
        monkeypatch.delenv(name, raising=False)


def project(tmp_path: Path, text: str) -> Path:
    """A project folder with ``text`` as its file, and a subfolder to run from."""
    (tmp_path / FILE_NAME).write_text(text)
    (tmp_path / "a" / "b").mkdir(parents=True)
    return tmp_path / "a" / "b"


def test_every_key_is_read_from_a_folder_below_the_file(tmp_path: Path) -> None:
    below = project(tmp_path, FULL)
    assert find_project_file(below) == tmp_path / FILE_NAME
    s = load_settings(cwd=below)
    assert s == Settings(
        data_dir=tmp_path / "state", kafka_bootstrap="broker:9092",
        redis_url="redis://cache:6379/2", topic="orders", dead_topic="orders.dead",
        prefix="shop", offline_store=Path("/srv/offline"),
        feature_repository=tmp_path / "defs", allowed_lateness=600,
        project_file=tmp_path / FILE_NAME)
    assert s.offline_dir == Path("/srv/offline")


def test_the_environment_overrides_the_file(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    below = project(tmp_path, FULL)
    monkeypatch.setenv(ENV_PREFIX, "envprefix")
    monkeypatch.setenv(ENV_REDIS, "redis://elsewhere:1")
    monkeypatch.setenv(ENV_OF_KEY["allowed_lateness"], "7")
    monkeypatch.setenv(ENV_OF_KEY["offline_store"], str(tmp_path / "o"))
    s = load_settings(cwd=below)
    assert (s.prefix, s.redis_url, s.allowed_lateness, s.offline_dir) == (
        "envprefix", "redis://elsewhere:1", 7, tmp_path / "o")
    assert s.topic == "orders"  # what the environment does not set still comes from the file
    assert load_settings("explicit", cwd=below).data_dir == Path("explicit").resolve()


def test_without_a_file_today_s_defaults_apply(tmp_path: Path) -> None:
    s = load_settings(cwd=tmp_path)
    assert s == Settings(Path("data").resolve(), None, None,
                         allowed_lateness=DEFAULT_ALLOWED_LATENESS_S)
    assert s.offline_dir == Path("data").resolve() / "offline"


def test_a_home_relative_path_is_expanded(tmp_path: Path) -> None:
    below = project(tmp_path, "data_dir: ~/bf-data\noffline_store: ~/bf-offline\n")
    s = load_settings(cwd=below)
    assert (s.data_dir, s.offline_dir) == (Path.home() / "bf-data", Path.home() / "bf-offline")


def test_an_empty_file_and_nulls_mean_the_defaults(tmp_path: Path) -> None:
    below = project(tmp_path, "# nothing yet\n")
    assert load_settings(cwd=below).prefix == "bf"
    (tmp_path / FILE_NAME).write_text("prefix: null\nkafka:\n")
    s = load_settings(cwd=below)
    assert (s.prefix, s.kafka_bootstrap) == ("bf", None)


@pytest.mark.parametrize(("text", "expected"), [
    ("prefix: shop\nlateness: 5\n", "line 2: unknown key 'lateness'; the keys are data_dir"),
    ("prefix: a\nprefix: b\n", "line 2: key 'prefix' is given twice"),
    ("topic: orders\nprefix: 5\n", "line 2: 'prefix' (the namespace of every online-store "
                                   "key) must be a non-empty text, not 5"),
    ("allowed_lateness: an hour\n", f"{LATENESS} must be a whole number of seconds >= 0, "
                                    "not 'an hour'"),
    ("allowed_lateness: true\n", f"{LATENESS} must be a whole number of seconds >= 0, "
                                 "not True"),
    ("\n\noffline_store: ftp://bucket/x\n", "line 3: 'offline_store'"),
    ("prefix: [1\n", "line 2: not valid YAML (expected ',' or ']', but got '<stream end>', "
                     "while parsing a flow sequence from line 1)"),
    ("- prefix\n", "line 1: the project file must be a mapping of keys to values"),
])
def test_a_bad_file_names_its_line_and_key(tmp_path: Path, text: str, expected: str) -> None:
    below = project(tmp_path, text)
    with pytest.raises(ProjectFileError) as caught:
        load_settings(cwd=below)
    assert str(caught.value).startswith(f"{tmp_path / FILE_NAME} {expected}")


def test_an_offline_store_uri_is_a_remote_location(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_OFFLINE_URI, raising=False)
    monkeypatch.delenv(ENV_OF_KEY["offline_store"], raising=False)
    below = project(tmp_path, "offline_store: s3://shop-lake/basketflow/\n")
    assert load_settings(cwd=below).offline_dir == StorePath("s3://shop-lake/basketflow")
    monkeypatch.setenv(ENV_OFFLINE_URI, "gs://other/prefix")
    assert str(load_settings(cwd=below).offline_dir) == "gs://other/prefix"


def test_a_secret_in_the_offline_store_uri_is_refused_unshown(tmp_path: Path) -> None:
    below = project(tmp_path, "offline_store: s3://bucket/x?secret_key=hunter2\n")
    with pytest.raises(ProjectFileError) as caught:
        load_settings(cwd=below)
    assert "a secret in the offline store's URI" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_a_bad_environment_lateness_names_the_variable(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_OF_KEY["allowed_lateness"], "1h")
    with pytest.raises(BasketflowError, match="BASKETFLOW_ALLOWED_LATENESS='1h': give a whole"):
        load_settings(cwd=tmp_path)


def test_the_flow_s_children_get_the_settings_of_the_file(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """``run`` starts its parts with the resolved settings in their environment: a part
    started anywhere resolves the same ones."""
    parent = load_settings(cwd=project(tmp_path, FULL))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name, value in child_env(parent).items():
        monkeypatch.setenv(name, value)
    child = load_settings(cwd=Path("/"))
    assert child == Settings(**{**parent.__dict__, "project_file": None})


def test_a_bad_file_is_one_error_line_for_every_command(tmp_path: Path) -> None:
    below = project(tmp_path, "prefix: shop\nredis_url: redis://x\n")
    env = {k: v for k, v in user_env(tmp_path / "data").items() if k not in ENV_OF_KEY.values()}
    done = basketflow("status", env=env, cwd=below)
    assert done.returncode == 1
    assert error_lines(done) == [f"Error: {tmp_path / FILE_NAME} line 2: unknown key "
                                 "'redis_url'; the keys are data_dir, offline_store, kafka, "
                                 "redis, topic, dead_topic, prefix, feature_repository, "
                                 "allowed_lateness, expectations"]
    assert "Traceback" not in done.stderr


def test_init_writes_a_project_of_today_s_defaults(tmp_path: Path) -> None:
    made = init_project(tmp_path / "shop")
    s = load_settings(cwd=tmp_path / "shop" / "features")
    assert configured(s.expectations).changed == []  # every expectation at its default
    assert replace(s, expectations=()) == Settings(tmp_path / "shop" / "data", None, None,
                         offline_store=tmp_path / "shop" / "data" / "offline",
                         feature_repository=tmp_path / "shop" / "features",
                         project_file=made.project_file)
    assert all(len(line) <= 80 for line in made.project_file.read_text().splitlines())
    from basketflow.schemas.default_repository import FILES
    assert [p.read_text() for p in made.declarations] == [p.read_text() for p in FILES]


def test_init_never_overwrites(tmp_path: Path) -> None:
    init_project(tmp_path)
    (tmp_path / FILE_NAME).write_text("prefix: mine\n")
    with pytest.raises(ProjectExists, match="basketflow.yaml exists: basketflow init never "
                                            "overwrites"):
        init_project(tmp_path)
    assert (tmp_path / FILE_NAME).read_text() == "prefix: mine\n"
    (tmp_path / FILE_NAME).unlink()
    with pytest.raises(ProjectExists, match="customer.py exists"):
        init_project(tmp_path)


def test_the_init_command_then_a_command_inside_the_project(tmp_path: Path) -> None:
    env = {k: v for k, v in user_env(tmp_path / "unused").items()
           if k not in ENV_OF_KEY.values()}
    done = basketflow("init", "shop", "--json", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["project_file"] == str(tmp_path / "shop" / FILE_NAME)
    listed = basketflow("features", "list", "--json", env=env, cwd=tmp_path / "shop" / "features")
    assert listed.returncode == 0, listed.stderr
    again = basketflow("init", "shop", env=env, cwd=tmp_path)
    assert again.returncode == 1 and error_lines(again)[0].startswith("Error: ")


@pytest.mark.server
def test_a_command_inside_the_project_reads_its_redis_and_prefix(tmp_path: Path,
                                                                 redis_url: str) -> None:
    """No server in the environment: ``basketflow features ID`` run in a subfolder reads
    the Redis and the key prefix the project file names."""
    prefix = f"p{os.getpid()}"
    below = project(tmp_path, f"redis: {redis_url}\nprefix: {prefix}\n")
    store = RedisOnlineStore(connect(redis_url), prefix)
    store.write(registry()["customer"], {"42": (1_291_191_960, {"lifetime_orders": 3})})
    env = {k: v for k, v in user_env(tmp_path / "data").items() if k not in ENV_OF_KEY.values()}
    done = basketflow("features", "42", "--view", "customer", "--json", env=env, cwd=below)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["views"]["customer"]["lifetime_orders"] == 3
