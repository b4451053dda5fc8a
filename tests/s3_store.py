"""An offline store on a real S3-protocol server: moto's standalone server (a test
server, ``moto[server]``), started on a free loopback port once per test session (per
xdist worker), with a fresh bucket per test.

Import the fixtures into a test module (``from tests.s3_store import offline_root,
s3_server``) and take ``offline_root``: the test runs twice, once on a local folder
and once on ``s3://<bucket>/offline``, so the same test proves both stores.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from basketflow.offline_uri import StoreDir, store_location

#: What every S3 client here needs: any key is accepted by the test server.
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
          "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


@dataclass(frozen=True)
class S3Server:
    """The test server's address (``http://127.0.0.1:PORT``)."""

    endpoint: str

    def bucket(self) -> str:
        """A new, empty bucket's name."""
        from pyarrow import fs
        name = f"bf-{uuid.uuid4().hex[:12]}"
        fs.S3FileSystem(endpoint_override=self.endpoint, allow_bucket_creation=True,
                        access_key="testing", secret_key="testing",
                        region="us-east-1").create_dir(name)
        return name

    def env(self) -> dict[str, str]:
        """The environment a process needs to reach the server as plain S3."""
        return {**S3_ENV, "AWS_ENDPOINT_URL": self.endpoint}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port, stopped at the session's end; the
    process's own environment points S3 clients at it (credentials and endpoint)."""
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                 "-p", str(port)], stdout=out, stderr=subprocess.STDOUT)
    server = S3Server(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{server.endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto's server did not start: {log.read_text()}")
                time.sleep(0.1)
        saved = {k: os.environ.get(k) for k in server.env()}
        os.environ.update(server.env())
        try:
            yield server
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.server)])
def offline_root(request: pytest.FixtureRequest, tmp_path: Path) -> StoreDir:
    """The root of an empty offline store: a local folder, then a fresh S3 bucket's
    ``offline/`` folder on the test server."""
    if request.param == "local":
        return tmp_path / "offline"
    server: S3Server = request.getfixturevalue("s3_server")
    return store_location(f"s3://{server.bucket()}/offline")
