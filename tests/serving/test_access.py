"""Access to ``basketflow serve``: API keys with roles (401 without a key, 403 with the
wrong role, /health open), from a file and from the environment, never in the log; TLS
by the server's own options; one ``Error:`` line for a bad keys file."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from basketflow.config import Settings
from tests.serving.conftest import CUSTOMER, server_env, start_server, write_customer
from tests.serving.conftest import LINES as CUSTOMER_LINES

READER, PUSHER, ADMIN = "r-7f3c9a1e2b", "p-5d8e0c4a7f", "a-1b2c3d4e5f"
ROUTES = [("get", f"/customers/{CUSTOMER}/features", None, "read"),
          ("post", "/features", {"entities": [CUSTOMER]}, "read"),
          ("get", f"/customers/{CUSTOMER}/score", None, "read"),
          ("post", "/get-online-features", {"features": ["customer:spend_30d"],
                                            "entities": {"customer_id": [1]}}, "read"),
          ("post", "/predict", {"lines": [{"stock_code": "A", "quantity": 1,
                                           "unit_price": 1.0}]}, "predict"),
          ("post", "/events", {"lines": [{}]}, "push"),
          ("get", "/metrics", None, "admin")]


def test_keys_and_roles(settings: Settings, tmp_path: Path) -> None:
    write_customer(settings, CUSTOMER, CUSTOMER_LINES)
    keys = tmp_path / "keys.txt"
    keys.write_text(f"# the shop's pages\n{READER}:read\n{ADMIN}:admin\n")
    env = server_env(settings, BASKETFLOW_API_KEYS=f"{PUSHER}:push,read")
    server = start_server(settings, "--api-keys", str(keys), env=env)
    try:
        client = server.client
        assert client.get("/health").status_code == 200
        assert client.get("/health/live").status_code == 200
        for method, path, body, role in ROUTES:
            bare = client.request(method, path, json=body)
            assert bare.status_code == 401 and bare.json()["error"] == "unauthorized", path
            assert bare.headers["www-authenticate"] == "Bearer"
            wrong = client.request(method, path, json=body, headers={"X-API-Key": "nope"})
            assert wrong.status_code == 401, path
            for key, roles in ((READER, {"read"}), (PUSHER, {"push", "read"}),
                               (ADMIN, {"read", "predict", "push", "admin"})):
                got = client.request(method, path, json=body,
                                     headers={"Authorization": f"Bearer {key}"})
                if role in roles:
                    assert got.status_code not in (401, 403), (path, key, got.text)
                else:
                    assert got.status_code == 403, (path, key, got.text)
                    assert got.json()["error"] == "forbidden"
        read = client.get(f"/customers/{CUSTOMER}/features", headers={"X-API-Key": READER})
        assert read.status_code == 200 and read.json()["entity"] == CUSTOMER
        client.get(f"/customers/{CUSTOMER}/features?api_key={READER}")
    finally:
        log = server.stop()
    assert "GET /customers/{customer_id}/features 200" in log  # the access log is on
    for key in (READER, PUSHER, ADMIN):
        assert key not in log


def test_without_keys_every_route_is_open(server: Any) -> None:
    assert server.client.get("/metrics").status_code == 200


@pytest.mark.parametrize(("text", "message"), [
    ("k1:read,write\n", "API key entry 1 of"),
    ("just-a-key\n", "is not KEY:ROLE"),
    ("# nothing\n", "holds no key"),
])
def test_a_bad_keys_file_is_one_error_line(settings: Settings, tmp_path: Path, text: str,
                                           message: str) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text(text)
    done = subprocess.run([sys.executable, "-m", "basketflow.cli", "serve", "--api-keys",
                           str(keys)], env=server_env(settings), capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith("Error: ") and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "k1" not in done.stderr


def test_tls(settings: Settings, tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    server = start_server(settings, "--tls-key", str(key), "--tls-cert", str(cert),
                          scheme="https")
    try:
        assert server.client.get("/health/live").status_code == 200
    finally:
        server.stop()
    half = subprocess.run([sys.executable, "-m", "basketflow.cli", "serve", "--tls-key",
                           str(key)], env=server_env(settings), capture_output=True,
                          text=True, timeout=60)
    assert half.returncode == 1 and half.stderr.startswith("Error: TLS needs both")
