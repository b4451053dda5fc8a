"""``basketflow``: the one command of the feature store.

Every subcommand resolves its servers the same way (the environment first, then what
``basketflow up`` started), prints what it did for people, and with ``--json`` prints
one JSON document for scripts. Each command group is a module of this package that
parses options, calls the application layer (:mod:`basketflow.app`) and renders its
typed result. Errors that are the user's to fix (:class:`~basketflow.errors.BasketflowError`)
are caught here, once, and shown as one ``Error:`` line with exit status 1; any other
exception (a bug) is one ``Error:`` line too, naming its type, unless ``--debug`` or
``BASKETFLOW_DEBUG=1`` asks for the traceback. Everything a command prints, on standard
output and standard error (results, ``--json``, errors, logs), goes through
:func:`basketflow.security.redact`, so no password or key is ever shown.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from basketflow.cli import (
    backfill,
    check,
    compact,
    data,
    demo,
    features,
    model_registry,
    models,
    output,
    project,
    report,
    run,
    security,
    serve,
    servers,
)
from basketflow.cli.output import FullHelpGroup
from basketflow.config import ENV_DEBUG, load_settings
from basketflow.errors import BasketflowError
from basketflow.security import RedactingStream, redact_log_handlers


class BasketflowCommand(FullHelpGroup):
    """The root group: a :class:`BasketflowError` raised by any subcommand becomes a
    :class:`click.ClickException` (its message as one ``Error:`` line, exit status 1)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BasketflowError as exc:
            if debugging(ctx):
                raise
            raise click.ClickException(str(exc)) from exc
        except (click.exceptions.ClickException, click.exceptions.Exit,
                click.exceptions.Abort):
            raise
        except Exception as exc:  # a bug: one line, the traceback only when asked for
            if debugging(ctx):
                raise
            raise click.ClickException(
                f"unexpected {type(exc).__name__}: {exc} (this is a bug; run again with "
                f"--debug or {ENV_DEBUG}=1 for the traceback, and report it)") from exc


def debugging(ctx: click.Context) -> bool:
    """Whether tracebacks may be shown: ``--debug`` or ``BASKETFLOW_DEBUG=1``."""
    return bool(ctx.params.get("debug")) or os.environ.get(ENV_DEBUG, "") not in ("", "0")


@click.group(cls=BasketflowCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Offline store, recovery snapshots and embedded servers' state "
                   "[env BASKETFLOW_DATA_DIR; else basketflow.yaml's data_dir; default "
                   "./data].")
@click.option("-v", "--verbose", is_flag=True, help="Log more (debug level).")
@click.option("--debug", is_flag=True,
              help=f"Show the traceback of an error [env {ENV_DEBUG}=1].")
@click.version_option(package_name="basketflow", prog_name="basketflow")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None, verbose: bool, debug: bool) -> None:
    """basketflow: a real-time feature store for online retail.

    Transactions are replayed into Kafka; a Bytewax dataflow keeps customer and basket
    features in Redis (online) and appends every event to Parquet (offline).

    \b
    Typical session:
      basketflow up                         start the embedded broker and Redis
      basketflow generate --rows 50000 --out sample.csv
      basketflow replay sample.csv          send it to Kafka
      basketflow run --stop-at-end          the dataflow, until the topic's end
      basketflow entities --limit 3         some customers with live features
      basketflow features ID [ID ...]       their live features
      basketflow status                     servers, lag, stores (--watch)
      basketflow down
    Or all of it at once: basketflow demo

    Settings come from the environment, then from the project file basketflow.yaml
    found in this folder or above it (basketflow init writes one), then the defaults.
    """
    if not debugging(ctx):  # a dataflow's panic shows its message, not a backtrace
        os.environ["RUST_BACKTRACE"] = "0"
    redact_output()
    os.umask(0o077)  # what basketflow writes holds customers' purchases: its user's alone
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    redact_log_handlers()
    ctx.obj = load_settings(data_dir)
    if ctx.obj.expectations:  # checked here too, so a bad value stops every command
        from basketflow.schemas.expectations import configured
        configured(ctx.obj.expectations)


def redact_output() -> None:
    """Send this process's standard output and error through
    :func:`~basketflow.security.redact` (once), so every line printed from here on,
    an error's included, has its passwords and keys masked."""
    if not isinstance(sys.stdout, RedactingStream):
        sys.stdout = RedactingStream(sys.stdout)
    if not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr)


for command in (project.init, project.plan, project.apply,
                servers.up, servers.down, servers.status, data.generate, data.replay,
                run.run, features.features, features.entities, backfill.backfill,
                backfill.historical,
                report.report, report.drift, report.categories, models.score, models.predict,
                models.segment, models.evaluate, model_registry.models, demo.demo, check.check,
                compact.compact,
                serve.serve, security.security):
    cli.add_command(command)


def main() -> None:
    """Console entry point. A command that asked for it (:func:`~basketflow.cli.output.
    end_at_once`) ends the process as soon as its output is written, without the
    interpreter's teardown of the modules it imported."""
    try:
        cli(prog_name="basketflow")
    except SystemExit as exc:
        if output.ending_at_once():
            output.end_now(exc.code if isinstance(exc.code, int) else 1)
        raise
