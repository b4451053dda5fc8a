"""The offline store on real object-storage servers, each a test server started on a
free loopback port once per test session (per xdist worker), with a fresh bucket per
test: moto's S3 server (``moto[server]``), ``gcp-storage-emulator`` for GCS (both in
the ``test`` extra), and Azurite for Azure Blob Storage (npm's ``azurite``, which
``.ci/run`` installs under ``.cache/azurite``; the Azure tests skip without it).

Import the fixtures into a test module (``from tests.object_stores import
offline_root, s3_server, gcs_server, azure_server``) and take ``offline_root``: the test
runs on a local folder, then on ``s3://``, ``gs://`` and ``abfs://`` buckets, so the
same test proves every store.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from basketflow.offline_uri import StoreDir, store_location

#: What every S3 client here needs: any key is accepted by the test server.
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
          "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
#: Azurite's one account and its published development key (not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
               "K1SZFPTOtr/KBHBeksoGMGw==")
#: Where ``.ci/run`` installs Azurite (``npm install --prefix``), in an ignored folder.
AZURITE_PREFIX = Path(__file__).resolve().parent.parent / ".cache" / "azurite"


@dataclass(frozen=True)
class S3Server:
    """The S3 test server's address (``http://127.0.0.1:PORT``)."""

    endpoint: str

    def bucket(self) -> str:
        """A new, empty bucket's name."""
        from pyarrow import fs
        name = f"bf-{uuid.uuid4().hex[:12]}"
        fs.S3FileSystem(endpoint_override=self.endpoint, allow_bucket_creation=True,
                        access_key="testing", secret_key="testing",
                        region="us-east-1").create_dir(name)
        return name

    def root(self) -> str:
        """The URI of a fresh bucket's ``offline`` folder."""
        return f"s3://{self.bucket()}/offline"

    def env(self) -> dict[str, str]:
        """The environment a process needs to reach the server as plain S3."""
        return {**S3_ENV, "AWS_ENDPOINT_URL": self.endpoint}


@dataclass(frozen=True)
class GcsServer:
    """The GCS emulator's address (``127.0.0.1:PORT``)."""

    host: str

    def root(self) -> str:
        """The URI of a fresh bucket's ``offline`` folder."""
        from pyarrow import fs
        name = f"bf-{uuid.uuid4().hex[:12]}"
        fs.GcsFileSystem(anonymous=True, scheme="http", endpoint_override=self.host,
                         project_id="test").create_dir(name)
        return f"gs://{name}/offline"

    def env(self) -> dict[str, str]:
        """The environment a process needs to reach the emulator (Google's variable)."""
        return {"STORAGE_EMULATOR_HOST": f"http://{self.host}"}


@dataclass(frozen=True)
class AzureServer:
    """Azurite's blob endpoint (``127.0.0.1:PORT``)."""

    authority: str

    def root(self) -> str:
        """The URI of a fresh container's ``offline`` folder (the account in the URI,
        its key in the environment)."""
        from pyarrow import fs
        name = f"bf-{uuid.uuid4().hex[:12]}"
        fs.AzureFileSystem(account_name=AZURITE_ACCOUNT, account_key=AZURITE_KEY,
                           blob_storage_authority=self.authority,
                           dfs_storage_authority=self.authority, blob_storage_scheme="http",
                           dfs_storage_scheme="http").create_dir(name)
        return f"abfs://{AZURITE_ACCOUNT}@{self.authority}/{name}/offline?enable_tls=false"

    def env(self) -> dict[str, str]:
        """The environment a process needs to sign its requests to Azurite."""
        return {"AZURE_STORAGE_ACCOUNT_KEY": AZURITE_KEY}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _server(command: list[str], probe: str, log: Path, env: dict[str, str]) -> Iterator[None]:
    """Run a test server until the block ends: wait until ``probe`` answers (any HTTP
    status), and set ``env`` in this process's environment meanwhile."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(probe, timeout=1).close()
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{command[0]} did not start: {log.read_text()}")
                time.sleep(0.1)
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # Azurite waits on its clients' open connections
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port, stopped at the session's end; the
    process's own environment points S3 clients at it (credentials and endpoint)."""
    port = _free_port()
    server = S3Server(f"http://127.0.0.1:{port}")
    with _server([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                 f"{server.endpoint}/moto-api/",
                 tmp_path_factory.mktemp("moto") / "server.log", server.env()):
        yield server


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsServer]:
    """The GCS emulator (in memory) on a free loopback port, stopped at the session's
    end; ``STORAGE_EMULATOR_HOST`` points this process's ``gs://`` stores at it."""
    emulator = shutil.which("gcp-storage-emulator", path=str(Path(sys.executable).parent))
    if emulator is None:
        pytest.skip("gcp-storage-emulator is not installed (pip install -e '.[test]')")
    server = GcsServer(f"127.0.0.1:{_free_port()}")
    host, port = server.host.split(":")
    with _server([emulator, "start", "--host", host, "--port", port, "--in-memory", "-q"],
                 f"http://{server.host}/storage/v1/b",
                 tmp_path_factory.mktemp("gcs") / "server.log", server.env()):
        yield server


@pytest.fixture(scope="session")
def azure_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzureServer]:
    """Azurite's blob service (in memory) on a free loopback port, stopped at the
    session's end; ``AZURE_STORAGE_ACCOUNT_KEY`` signs this process's requests."""
    azurite = shutil.which("azurite-blob", path=str(AZURITE_PREFIX / "node_modules" / ".bin")) \
        or shutil.which("azurite-blob")
    if azurite is None:
        pytest.skip("Azurite is not installed: npm install --prefix .cache/azurite azurite "
                    "(.ci/run does)")
    server = AzureServer(f"127.0.0.1:{_free_port()}")
    host, port = server.authority.split(":")
    folder = tmp_path_factory.mktemp("azurite")
    node = shutil.which("node")
    if node is None:
        pytest.skip("Azurite needs Node.js, which is not installed")
    with _server([node, "--require", str(Path(__file__).with_name("azurite_continue.js")),
                  azurite, "--blobHost", host, "--blobPort", port, "--inMemoryPersistence",
                  "--skipApiVersionCheck", "--silent"],
                 f"http://{server.authority}/{AZURITE_ACCOUNT}?comp=list",
                 folder / "server.log", server.env()):
        yield server


#: The remote stores and the fixture of each one's server.
REMOTE = {"s3": "s3_server", "gcs": "gcs_server", "azure": "azure_server"}


@pytest.fixture(params=["local", *(pytest.param(k, marks=pytest.mark.server) for k in REMOTE)])
def offline_root(request: pytest.FixtureRequest, tmp_path: Path) -> StoreDir:
    """The root of an empty offline store: a local folder, then a fresh bucket's
    ``offline/`` folder on each test server (S3, GCS, Azure)."""
    if request.param == "local":
        return tmp_path / "offline"
    server: S3Server | GcsServer | AzureServer = request.getfixturevalue(REMOTE[request.param])
    return store_location(server.root())
