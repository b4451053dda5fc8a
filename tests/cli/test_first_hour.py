"""A new user's first hour (issue 22): the README's commands on generated data, through
the real command on the real servers: ids that exist (``entities``, ``features`` of
many), exit statuses that agree between text and ``--json``, ``status`` without wrong
lag numbers, every command readable at 80 columns, output paths, ``--version`` and
``--debug``, and no heavy imports where a command does not need them."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from basketflow.config import Settings
from tests.cli.commands import basketflow, error_lines, user_env

ROWS = 3000


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory, broker: str,
           redis_url: str) -> tuple[Settings, Path]:
    """A data directory of ``ROWS`` generated lines, replayed and run through the flow with
    the commands of the README (its own topic and prefix); and the folder they ran in."""
    home = tmp_path_factory.mktemp("first-hour")
    unique = f"t-{uuid.uuid4().hex[:8]}"
    settings = Settings(home / "data", broker, redis_url, unique, f"{unique}.dead", unique)
    env = user_env(settings.data_dir, settings)
    for args in (["generate", "--rows", str(ROWS), "--seed", "7", "--out", "sample.csv"],
                 ["replay", "sample.csv"], ["run", "--stop-at-end"]):
        done = basketflow(*args, env=env, cwd=home, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    return settings, home


def test_entities_lists_ids_that_features_shows(loaded: tuple[Settings, Path]) -> None:
    settings, home = loaded
    env = user_env(settings.data_dir, settings)
    listed = basketflow("entities", "--limit", "3", "--json", env=env, cwd=home)
    assert listed.returncode == 0, listed.stderr
    ids = [e["entity"] for e in json.loads(listed.stdout)]
    times = [e["_ts"] for e in json.loads(listed.stdout)]
    assert len(ids) == 3 and times == sorted(times, reverse=True)

    many = basketflow("features", *ids[:2], "--json", env=env, cwd=home)
    assert many.returncode == 0, many.stderr
    docs = json.loads(many.stdout)
    assert [d["entity"] for d in docs] == ids[:2]
    assert all(d["views"]["customer"]["_ts"] for d in docs)
    text = basketflow("features", *ids[:2], env=env, cwd=home)
    assert text.returncode == 0 and all(i in text.stdout for i in ids[:2])

    products = basketflow("entities", "--view", "product", "--limit", "2", env=env, cwd=home)
    assert products.returncode == 0 and "stock_code" in products.stdout


def test_an_unknown_id_fails_alike_in_text_and_json(loaded: tuple[Settings, Path]) -> None:
    settings, home = loaded
    env = user_env(settings.data_dir, settings)
    for extra in ((), ("--json",)):
        done = basketflow("features", "00000", *extra, env=env, cwd=home)
        assert done.returncode == 1, (extra, done.stdout, done.stderr)
        assert len(error_lines(done)) == 1 and "00000" in error_lines(done)[0]
    known = json.loads(basketflow("entities", "--limit", "1", "--json", env=env).stdout)[0]
    mixed = basketflow("features", known["entity"], "00000", "--json", env=env, cwd=home)
    assert mixed.returncode == 1 and len(json.loads(mixed.stdout)) == 2


def test_status_shows_no_wrong_lag_and_the_right_mode(loaded: tuple[Settings, Path]) -> None:
    """The session's servers are the bundled binaries, started outside ``basketflow up``
    (as the demo's are): embedded, not external; Tansu's watermarks are not the ends of
    its partitions, so no lag and no watermark is shown, one word says it is unknown."""
    settings, home = loaded
    env = user_env(settings.data_dir, settings, COLUMNS="80")
    report = json.loads(basketflow("status", "--json", env=env, cwd=home).stdout)
    for service in report["services"].values():
        assert service["mode"] == "embedded" and service["pid"], service
    rows = report["topics"][settings.topic]["per_partition"]
    assert sum(r["next_offset"] or 0 for r in rows) == ROWS
    assert all(r["lag"] is None and r["high_watermark"] is None for r in rows)
    text = basketflow("status", env=env, cwd=home)
    assert text.returncode == 0, text.stderr
    assert "high watermark" not in text.stdout and "lag: unknown" in text.stdout
    assert "external" not in text.stdout and "-" + "1 " not in text.stdout


#: Commands a user runs in the first hour, each as it reads at 80 columns ({id}: a
#: customer of the data, {product}: a stock code).
WIDE_COMMANDS = [
    ["--help"], ["features", "--help"], ["segment", "--help"], ["run", "--help"],
    ["features", "list"], ["features", "describe", "customer"],
    ["features", "describe", "basket"], ["features", "describe", "product"], ["categories"],
    ["entities"], ["features", "{id}", "{id2}"], ["features", "{product}", "--view", "product"],
    ["status"], ["replay", "sample.csv", "--limit", "100"],
    ["backfill", "--from", "sample.csv", "--processes", "1"],
    ["report", "--date", "2010-12-09", "--format", "md,json"], ["plan"],
    ["init", "shop"], ["init", "--help"],
]


def test_every_command_reads_at_80_columns(loaded: tuple[Settings, Path]) -> None:
    settings, home = loaded
    env = user_env(settings.data_dir, settings, COLUMNS="80")
    ids = [e["entity"] for e in json.loads(
        basketflow("entities", "--limit", "2", "--json", env=env).stdout)]
    product = json.loads(basketflow("entities", "--view", "product", "--limit", "1", "--json",
                                    env=env).stdout)[0]["entity"]
    for args in WIDE_COMMANDS:
        args = [a.format(id=ids[0], id2=ids[1], product=product) for a in args]
        done = basketflow(*args, env=env, cwd=home, timeout=300)
        assert done.returncode == 0, (args, done.stderr[-2000:])
        lines = (done.stdout + done.stderr).splitlines()
        assert len(lines) > 1, args
        wide = [line for line in lines if len(line) > 80]
        assert not wide, (args, wide)
        cut = [line for line in lines if "…" in line
               or line.endswith("...") and not line.startswith("Usage:")]  # COMMAND [ARGS]...
        assert not cut, (args, done.stdout)


def test_reports_go_under_the_data_dir_with_an_index(loaded: tuple[Settings, Path]) -> None:
    settings, home = loaded
    env = user_env(settings.data_dir, settings)
    done = basketflow("report", "--from", "2010-12-01", "--to", "2010-12-02", "--format",
                      "md,json", env=env, cwd=home, timeout=300)
    assert done.returncode == 0, done.stderr
    reports = settings.data_dir / "reports"
    assert (reports / "2010-12-02" / "report.md").is_file()
    index = (reports / "index.html").read_text()
    assert "2010-12-01/report.md" in index and "2010-12-02/report.json" in index
    assert not (home / "reports").exists()
    made = basketflow("report", "--date", "2010-12-01", "--format", "md", "--out",
                      "new/deeper", "--mkdir", env=env, cwd=home, timeout=300)
    assert made.returncode == 0 and (home / "new" / "deeper" / "index.html").is_file()


def test_generate_writes_where_the_folder_exists_or_with_mkdir(tmp_path: Path) -> None:
    env = user_env(tmp_path / "data")
    refused = basketflow("generate", "--rows", "10", "--out", "a/b/x.csv", env=env,
                         cwd=tmp_path)
    assert refused.returncode == 1 and "--mkdir" in error_lines(refused)[0]
    assert not (tmp_path / "a").exists()
    made = basketflow("generate", "--rows", "10", "--out", "a/b/x.csv", "--mkdir", env=env,
                      cwd=tmp_path)
    assert made.returncode == 0 and (tmp_path / "a" / "b" / "x.csv").is_file()


def test_version_and_debug(tmp_path: Path) -> None:
    env = user_env(tmp_path / "data")
    version = basketflow("--version", env=env)
    assert version.returncode == 0 and version.stdout.startswith("basketflow, version ")
    quiet = basketflow("features", "00000", env=env)
    assert quiet.returncode == 1 and "Traceback" not in quiet.stderr
    assert len(quiet.stderr.splitlines()) == 1
    for loud in (basketflow("--debug", "features", "00000", env=env),
                 basketflow("features", "00000", env=env | {"BASKETFLOW_DEBUG": "1"})):
        assert loud.returncode == 1 and "Traceback" in loud.stderr
        assert "ServicesNotRunning" in loud.stderr


def test_backfill_materialize_needs_only_redis(tmp_path: Path, redis_url: str) -> None:
    env = user_env(tmp_path / "data")
    assert basketflow("generate", "--rows", "500", "--out", "s.csv", env=env,
                      cwd=tmp_path).returncode == 0
    env["REDIS_URL"] = redis_url
    env["BASKETFLOW_PREFIX"] = f"t-{uuid.uuid4().hex[:8]}"
    done = basketflow("backfill", "--from", "s.csv", "--materialize", "--processes", "1",
                      env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "online store: 0 writes" not in done.stdout
    again = basketflow("backfill", "--from", "s.csv", "--processes", "1", env=env,
                       cwd=tmp_path, timeout=300)
    assert "feature log: 0 new rows (already there" in " ".join(again.stdout.split())


def test_a_rejected_line_shows_its_value_and_line(tmp_path: Path, settings: Settings) -> None:
    (tmp_path / "rej.csv").write_text(
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
        "536365,85123A,WHITE HEART,abc,12/1/2010 8:26,2.55,17850,United Kingdom\n")
    done = basketflow("replay", "rej.csv", env=user_env(tmp_path / "data", settings),
                      cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "'abc'" in done.stdout and "line 2 of rej.csv" in done.stdout
    assert "…" not in done.stdout


@pytest.mark.parametrize("args", [["--version"], ["features", "list"],
                                  ["features", "00000"], ["entities"], ["status"],
                                  ["segment", "show"], ["backfill", "--from", "missing.csv"],
                                  ["replay", "missing.csv"]])
def test_quick_commands_import_no_heavy_library(args: list[str], tmp_path: Path) -> None:
    """Start-up stays short: scikit-learn, pandas, Bytewax and River only where a command
    computes with them (benchmarks/startup.py prints the times)."""
    done = basketflow(*args, env=user_env(tmp_path / "data"), cwd=tmp_path,
                      python_flags=("-X", "importtime"))
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert imported, done.stderr[-500:]
    # segment show loads a saved segmentation (pandas), it fits nothing (scikit-learn)
    heavy = {"sklearn", "bytewax"} | ({"pandas", "river"} if args[0] != "segment" else set())
    assert not heavy & imported, (args, heavy & imported)
