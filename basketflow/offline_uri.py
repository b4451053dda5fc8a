"""Where the offline store lives: a local folder (the default), or a folder of any
filesystem ``pyarrow.fs`` reaches, named by a URI (``s3://``, ``gs://``, ``abfs://``,
``hdfs://``), so processes on many hosts write one store.

:func:`store_location` turns the setting (``BASKETFLOW_OFFLINE_URI``, or
``offline_store`` in ``basketflow.yaml``) into a location: a :class:`~pathlib.Path` for a
path or ``file://`` URI (every local reader and writer stays as it was), or a
:class:`StorePath` otherwise: the few path operations the store's modules use (``/``,
``name``, ``parent``, listing, reading and writing whole objects), over the URI's
``pyarrow.fs`` filesystem, made at its first use (nothing here imports Arrow, so a command
that only names the store costs nothing).

Credentials come from each filesystem's own environment, never from the URI, which is
shown in messages and passed to the flow's processes: for S3 ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION`` (an S3-compatible server's address from
``AWS_ENDPOINT_URL``); for GCS Google's default credentials, or ``STORAGE_EMULATOR_HOST``
(the Google clients' variable for an emulator, reached without credentials); for Azure
the account's key from ``AZURE_STORAGE_ACCOUNT_KEY``, else Azure's default credentials.

>>> root = store_location("s3://shop-lake/basketflow")
>>> str(root / "events" / "date=2011-01-05")
's3://shop-lake/basketflow/events/date=2011-01-05'
>>> (root / "events").name, str((root / "events").parent)
('events', 's3://shop-lake/basketflow')
>>> store_location("file:///srv/offline"), is_remote(root)
(PosixPath('/srv/offline'), True)
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Union
from urllib.parse import parse_qsl, unquote, urlparse

from basketflow.errors import BasketflowError

if TYPE_CHECKING:
    from pyarrow import NativeFile
    from pyarrow.fs import FileInfo, FileSystem

#: The URI schemes the offline store may live on (each a ``pyarrow.fs`` filesystem).
SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss", "hdfs")
#: Requests a reader of a remote store has in flight at once (files read, files checked):
#: each waits mostly on the network.
PARALLEL_REQUESTS = 8
#: Query parameters that would put a secret into a URI that is shown and passed on.
SECRET_PARAMETERS = {"access_key", "secret_key", "session_token", "account_key", "sas_token"}


class StoreLocationError(BasketflowError):
    """An offline store's URI that cannot be used (an unknown scheme, a secret in it)."""


class StorePath:
    """A file or folder of the offline store on a ``pyarrow.fs`` filesystem: a URI's root
    and a path under it, with the operations of :class:`~pathlib.Path` the store uses.

    An object store has no folders and no rename: a folder exists when something lies
    under it, a listing is one request for a whole tree, and an object is written whole
    or not at all (see :mod:`basketflow.sinks.offline_store` for what writers do
    instead of renaming).
    """

    __slots__ = ("root", "parts", "_kind")

    def __init__(self, root: str, parts: tuple[str, ...] = (), kind: str | None = None) -> None:
        self.root = root  # the URI as given, query included
        self.parts = parts
        self._kind = kind  # "file" or "dir" when a listing told it

    # -- naming -----------------------------------------------------------------------
    def __truediv__(self, name: str | PurePosixPath) -> StorePath:
        return StorePath(self.root, self.parts + tuple(PurePosixPath(name).parts))

    @property
    def name(self) -> str:
        return self.parts[-1] if self.parts else PurePosixPath(urlparse(self.root).path).name

    @property
    def parent(self) -> StorePath:
        if not self.parts:
            raise ValueError(f"{self} is the store's root: the parent is outside it")
        return StorePath(self.root, self.parts[:-1])

    def relative_to(self, other: StorePath) -> PurePosixPath:
        """This path under ``other`` (ValueError when it is not under it)."""
        if other.root != self.root or self.parts[:len(other.parts)] != other.parts:
            raise ValueError(f"{self} is not under {other}")
        return PurePosixPath(*self.parts[len(other.parts):])

    def with_name(self, name: str) -> StorePath:
        return self.parent / name

    def __str__(self) -> str:
        parsed = urlparse(self.root)
        path = "/".join([parsed.path.rstrip("/"), *self.parts])
        return parsed._replace(path=path).geturl()

    def as_posix(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return f"StorePath({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, StorePath) and other.root == self.root
                and other.parts == self.parts)

    def __hash__(self) -> int:
        return hash((self.root, self.parts))

    def __lt__(self, other: StorePath) -> bool:
        return (self.root, self.parts) < (other.root, other.parts)

    def __reduce__(self) -> tuple[Any, ...]:
        return (StorePath, (self.root, self.parts))

    # -- the filesystem -------------------------------------------------------------------
    @property
    def filesystem(self) -> FileSystem:
        """The URI's ``pyarrow.fs`` filesystem (one per root and process)."""
        return _filesystem(self.root)[0]

    @property
    def fs_path(self) -> str:
        """The path the filesystem knows this one by (``bucket/key`` on S3)."""
        return "/".join([_filesystem(self.root)[1].rstrip("/"), *self.parts])

    def info(self) -> FileInfo:
        return self.filesystem.get_file_info(self.fs_path)

    def is_dir(self) -> bool:
        if self._kind is not None:
            return self._kind == "dir"
        from pyarrow.fs import FileType
        return self.info().type == FileType.Directory

    def is_file(self) -> bool:
        if self._kind is not None:
            return self._kind == "file"
        from pyarrow.fs import FileType
        return self.info().type == FileType.File

    def exists(self) -> bool:
        from pyarrow.fs import FileType
        return self._kind is not None or self.info().type != FileType.NotFound

    def walk(self, recursive: bool) -> list[StorePath]:
        """What lies under this folder (everything at any depth when ``recursive``), in
        one listing, each knowing whether it is a file; [] when nothing does."""
        from pyarrow.fs import FileSelector, FileType
        base = self.fs_path.rstrip("/") + "/"
        found = []
        for entry in self.filesystem.get_file_info(
                FileSelector(self.fs_path, recursive=recursive, allow_not_found=True)):
            if entry.type in (FileType.File, FileType.Directory):
                relative = entry.path[len(base):] if entry.path.startswith(base) else entry.base_name
                kind = "file" if entry.type == FileType.File else "dir"
                found.append(StorePath(self.root, self.parts + tuple(relative.split("/")), kind))
        return found

    def iterdir(self) -> Iterator[StorePath]:
        return iter(self.walk(recursive=False))

    def glob(self, pattern: str) -> Iterator[StorePath]:
        """The files and folders whose path under this one matches ``pattern`` segment by
        segment (``*.parquet``, ``date=*/*.parquet``): one listing."""
        wanted = pattern.split("/")
        for found in self.walk(recursive=len(wanted) > 1):
            relative = found.parts[len(self.parts):]
            if len(relative) == len(wanted) and all(
                    fnmatch.fnmatchcase(p, w) for p, w in zip(relative, wanted)):
                yield found

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Make the folder (on an object store, a marker object the listings skip)."""
        self.filesystem.create_dir(self.fs_path, recursive=True)

    def open_input(self) -> NativeFile:
        """The file, to read with random access (``seek``, ``read``, ``size``)."""
        return self.filesystem.open_input_file(self.fs_path)

    def read_bytes(self) -> bytes:
        """The whole file, in one request (a stream: no request for its size first)."""
        try:
            with self.filesystem.open_input_stream(self.fs_path) as f:
                return f.read()
        except FileNotFoundError:
            raise
        except OSError as exc:
            if not self.exists():
                raise FileNotFoundError(2, "No such file", str(self)) from exc
            raise

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> int:
        """Write the whole file: on an object store one object, which appears whole or not
        at all; on HDFS, where a file being written is visible, under a hidden name first,
        then moved into place."""
        final = self.fs_path
        staged = final if urlparse(self.root).scheme != "hdfs" else \
            f"{final.rpartition('/')[0]}/.{self.name}.{os.getpid()}.tmp"
        with self.filesystem.open_output_stream(staged) as out:
            out.write(data)
        if staged != final:
            self.filesystem.move(staged, final)
        return len(data)

    def write_text(self, text: str, encoding: str = "utf-8") -> int:
        return self.write_bytes(text.encode(encoding))

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self.filesystem.delete_file(self.fs_path)
        except FileNotFoundError:
            if not missing_ok:
                raise


#: A location in the offline store: a local path, or a path on a remote filesystem.
StoreDir = Union[Path, StorePath]

_FILESYSTEMS: dict[tuple[int, str], tuple[FileSystem, str]] = {}


def _filesystem(root: str) -> tuple[FileSystem, str]:
    """The filesystem of a root URI and the root's path on it, made once per process (a
    forked process makes its own: a client's connections are not shared across a fork).

    pyarrow reads none of the environment variables that name a test server or hold a
    key; they are applied here, so that the URI never carries them."""
    key = (os.getpid(), root)
    made = _FILESYSTEMS.get(key)
    if made is None:
        from pyarrow import fs
        scheme = urlparse(root).scheme
        try:
            made = fs.FileSystem.from_uri(_with_s3_endpoint(root) if scheme == "s3" else root)
            if scheme in ("gs", "gcs") and os.environ.get("STORAGE_EMULATOR_HOST"):
                made = (_gcs_emulator(os.environ["STORAGE_EMULATOR_HOST"]), made[1])
            elif scheme in ("abfs", "abfss") and os.environ.get("AZURE_STORAGE_ACCOUNT_KEY"):
                made = (_azure_with_key(root, os.environ["AZURE_STORAGE_ACCOUNT_KEY"]), made[1])
        except (OSError, ValueError) as exc:
            raise StoreLocationError(f"the offline store {root} cannot be reached ({exc}); "
                                     "check the URI and the filesystem's credentials") from exc
        _FILESYSTEMS[key] = made
    return made


def _with_s3_endpoint(root: str) -> str:
    """An S3 URI with ``AWS_ENDPOINT_URL`` (the AWS tools' variable for an S3-compatible
    server) as its ``endpoint_override``, unless the URI names one itself."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint or "endpoint_override=" in root:
        return root
    return root + ("&" if "?" in root else "?") + f"endpoint_override={endpoint}"


def _gcs_emulator(host: str) -> FileSystem:
    """A GCS filesystem on the emulator ``STORAGE_EMULATOR_HOST`` names (``host:port`` or
    ``http://host:port``), without credentials, as Google's clients reach it (a ``gs://``
    URI's own ``endpoint_override`` keeps the default credentials, which wait on a
    metadata server that is not there)."""
    from pyarrow import fs
    parsed = urlparse(host if "://" in host else f"http://{host}")
    return fs.GcsFileSystem(anonymous=True, scheme=parsed.scheme,
                            endpoint_override=parsed.netloc)


def _azure_with_key(root: str, account_key: str) -> FileSystem:
    """An Azure filesystem signing with the account's key: the account from the URI
    (``abfs://container@ACCOUNT.dfs.core.windows.net/...``, or
    ``abfs://ACCOUNT@host:port/container/...`` for another endpoint such as Azurite,
    ``?enable_tls=false`` for plain HTTP; pyarrow has refused a URI without one), the key
    from the environment."""
    from pyarrow import fs
    parsed = urlparse(root)
    host = parsed.hostname or ""
    if host.endswith(".core.windows.net"):
        return fs.AzureFileSystem(account_name=host.split(".")[0], account_key=account_key)
    web = "http" if dict(parse_qsl(parsed.query)).get("enable_tls") == "false" else "https"
    authority = parsed.netloc.rpartition("@")[2]
    return fs.AzureFileSystem(account_name=unquote(parsed.username or ""),
                              account_key=account_key, blob_storage_authority=authority,
                              dfs_storage_authority=authority,
                              blob_storage_scheme=web, dfs_storage_scheme=web)


def store_location(value: str | Path, base: Path | None = None) -> StoreDir:
    """The offline store's location from a setting: a path (relative to ``base``, else
    the working directory) or ``file://`` URI gives a local :class:`~pathlib.Path`; a URI
    of one of :data:`SCHEMES` a :class:`StorePath` (not reached until it is used).

    >>> store_location("ftp://host/x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    basketflow.offline_uri.StoreLocationError: ftp://host/x: the offline store ...
    """
    if isinstance(value, Path):
        return value
    parsed = urlparse(value)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path)).resolve()
    if not parsed.scheme or len(parsed.scheme) == 1:  # a path (or a Windows drive letter)
        return ((base or Path.cwd()) / Path(value).expanduser()).resolve()
    if parsed.scheme not in SCHEMES:
        raise StoreLocationError(
            f"{value}: the offline store is a path or a URI of "
            f"{', '.join(s + '://' for s in SCHEMES)} or file://, not {parsed.scheme}://")
    if not parsed.netloc:
        raise StoreLocationError(f"{value}: give the bucket or host after {parsed.scheme}://")
    secrets = SECRET_PARAMETERS & {k for k, _ in parse_qsl(parsed.query)}
    if secrets or parsed.password:
        raise StoreLocationError(
            f"{parsed.scheme}://{parsed.netloc.rpartition('@')[2]}{parsed.path}: a secret in "
            "the offline store's URI would be shown and passed on; give credentials in the "
            "filesystem's environment variables instead")
    return StorePath(value.rstrip("/") if not parsed.query else value)


def is_remote(location: StoreDir) -> bool:
    """Whether the store lives on a remote filesystem rather than a local folder."""
    return isinstance(location, StorePath)


def open_for_reading(path: StoreDir) -> Any:
    """A local file opened ``rb``, or a remote one's random-access reader: both seek,
    read, and close as a context manager."""
    return path.open_input() if isinstance(path, StorePath) else open(path, "rb")
