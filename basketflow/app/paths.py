"""Where a command may write: one rule for every output path a user gives.

A command writes a file (``generate --out``, ``historical --out``, ``segment assign
--out``) or a folder of files (``report --out``) only where the folder it goes into
already exists: a typo must not scatter folders over the disk (``/missing/dir/x.csv``
would otherwise be created from the root). ``--mkdir`` asks for the missing folders.
Paths the package chooses itself (the data directory and what is under it) are created
as needed.

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> output_path(root / "x.csv") == root / "x.csv"
True
>>> output_path(root / "missing" / "x.csv")
Traceback (most recent call last):
...
basketflow.app.paths.MissingFolder: the folder .../missing does not exist: create it, or give --mkdir to create it
"""

from __future__ import annotations

from pathlib import Path

from basketflow.errors import BasketflowError


class MissingFolder(BasketflowError, FileNotFoundError):
    """An output path whose folder does not exist (and ``--mkdir`` was not given)."""


class NotAFolder(BasketflowError, NotADirectoryError):
    """An output path under a file, or a folder output that is a file."""


class NoSuchFile(BasketflowError, FileNotFoundError):
    """An input file that does not exist, or is a folder."""


def input_file(path: Path, what: str = "a Kaggle data.csv or .csv.gz, or make one with "
                                      "`basketflow generate`") -> Path:
    """``path`` checked as an input file before anything heavy is imported or started:
    :class:`NoSuchFile`, saying what to give instead (``what``), if it is not a file."""
    if path.is_dir():
        raise NoSuchFile(f"{path} is a folder, not a file: give {what}")
    if not path.is_file():
        raise NoSuchFile(f"{path}: no such file: give {what}")
    return path


def output_path(path: Path, mkdir: bool = False, *, folder: bool = False) -> Path:
    """``path`` checked as an output (``folder``: a folder of outputs, which its writer
    creates): its parent folder must exist, or is created with ``mkdir``;
    :class:`MissingFolder` names the first missing folder otherwise."""
    parent = path.parent
    if folder and path.exists() and not path.is_dir():
        raise NotAFolder(f"{path} is a file, not a folder: give a folder for the output")
    if parent.exists() and not parent.is_dir():
        raise NotAFolder(f"{parent} is a file, not a folder: give a path in a folder")
    if not parent.is_dir():
        if not mkdir:
            missing = parent
            while not missing.parent.exists() and missing.parent != missing:
                missing = missing.parent
            shown = f"{missing}" if missing == parent else f"{missing} (of {parent})"
            raise MissingFolder(f"the folder {shown} does not exist: create it, "
                                "or give --mkdir to create it")
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MissingFolder(f"cannot create the folder {exc.filename or parent}: "
                                f"{exc.strerror or exc}") from exc
    return path
