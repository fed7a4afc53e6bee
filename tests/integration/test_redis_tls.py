"""rediss:// against a private redis-server speaking TLS with a certificate made by the test."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import BrokerUnavailable, Conveyor
from conveyor.brokers import Envelope, open_store
from tests.stores import unavailable

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]
PASSWORD = "tls-secret-hunter2"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _certificate(directory: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        unavailable("openssl")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run([str(openssl), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server binary")
    cert, key = _certificate(tmp_path)
    port = _free_port()
    proc = subprocess.Popen([str(binary), "--port", "0", "--tls-port", str(port),
                             "--bind", "127.0.0.1", "--tls-cert-file", str(cert),
                             "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
                             "--tls-auth-clients", "no", "--requirepass", PASSWORD,
                             "--save", "", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield port, cert
    finally:
        proc.terminate()
        proc.wait(10)


def test_tasks_run_over_tls_and_the_password_stays_hidden(tls_server: tuple[int, Path]) -> None:
    port, cert = tls_server
    url = (f"rediss://:{PASSWORD}@127.0.0.1:{port}/0?ssl_ca_certs={cert}"
           f"&prefix=tls-{uuid.uuid4().hex[:8]}")
    app = Conveyor("tls", broker=url)

    @app.task(name="double")
    def double(x: int) -> int:
        return 2 * x

    from conveyor.testing import run_queued

    result = double.delay(21)
    run_queued(app)
    assert result.get(timeout=5) == 42
    assert PASSWORD not in repr(app) and PASSWORD not in app.broker.url
    app.close()


def test_a_server_certificate_not_trusted_is_refused_clearly(
    tls_server: tuple[int, Path], tmp_path: Path
) -> None:
    port, _ = tls_server
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    other, _ = _certificate(elsewhere)  # a certificate the server does not have
    url = f"rediss://:{PASSWORD}@127.0.0.1:{port}/0?ssl_ca_certs={other}"
    with pytest.raises(BrokerUnavailable) as caught:
        store = open_store(url)
        store.publish([Envelope("x", "q", b"x")])  # type: ignore[union-attr]
    assert PASSWORD not in str(caught.value)
    assert "certificate" in str(caught.value).lower()
