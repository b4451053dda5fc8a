"""``basketflow security``: least-privilege settings to give the servers."""

from __future__ import annotations

from pathlib import Path

import click

from basketflow.cli.output import console, print_json
from basketflow.config import Settings


@click.group()
def security() -> None:
    """Security settings for the servers basketflow uses."""


@security.command("redis-acl")
@click.option("--prefix", default=None,
              help="The key prefix the users are limited to [default: BASKETFLOW_PREFIX, "
                   "or bf].")
@click.option("--writer-password-file", type=click.Path(dir_okay=False, path_type=Path),
              help="File whose first line is the writer's password (printed as its "
                   "SHA-256 only).")
@click.option("--reader-password-file", type=click.Path(dir_okay=False, path_type=Path),
              help="The same for the reader.")
@click.option("--json", "as_json", is_flag=True, help="Print the users and rules as JSON.")
@click.pass_obj
def redis_acl(settings: Settings, prefix: str | None, writer_password_file: Path | None,
              reader_password_file: Path | None, as_json: bool) -> None:
    """Print the ACL lines of a writer user (for `basketflow run`) and a reader user (for
    `basketflow serve` and the reading commands), both limited to the project's keys.

    \b
    Apply them with redis-cli as an administrator, then point each at its user:
      basketflow security redis-acl --writer-password-file w --reader-password-file r \\
          | redis-cli -u redis://default:ADMIN@HOST:6379
      REDIS_URL=redis://basketflow-writer:PASSWORD@HOST:6379 basketflow run
      REDIS_URL=redis://basketflow-reader:PASSWORD@HOST:6379 basketflow serve
    Without password files the lines hold placeholders (<writer-password>) to replace.
    """
    from basketflow.app.redis_acl import redis_acl as make_acl
    users = make_acl(prefix or settings.prefix, writer_password_file, reader_password_file)
    if as_json:
        print_json({user.name: {"rules": list(user.rules), "line": user.line}
                    for user in users})
        return
    if writer_password_file is None or reader_password_file is None:
        console.print("replace the <...-password> placeholders, or give password files")
    for user in users:
        click.echo(user.line)
