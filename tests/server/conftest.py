"""Starts the real `fourbit serve` on a fresh tiny model for the server tests.

Each test module gets its own server (module-scoped fixture): a new tiny checkpoint made by
`fourbit make-model`, a free port chosen by the server itself (--port 0, read back from its
log), /health polled until 200, and SIGTERM at the end (the server must then exit 0 within 20 s).
FOURBIT_BINARY names the binary (ctest sets it).
"""

import os
import re
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass

import http.client
import json
import pytest

API_KEY = "test-key-0123"
# Long enough that a request of a few thousand tokens outlives the test's disconnects (the tiny
# model makes ~2,000 tokens/s here).
MAX_MODEL_LEN = 4096
MAX_REQUEST_BYTES = 1 << 20


@dataclass
class Reply:
    status_code: int
    text: str

    def json(self):
        return json.loads(self.text)


def http_request(port: int, method: str, path: str, headers=None, json_body=None,
                 timeout=60) -> Reply:
    """One request on a new connection (standard library only)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        body = None if json_body is None else json.dumps(json_body).encode()
        all_headers = dict(headers or {})
        if body is not None:
            all_headers["Content-Type"] = "application/json"
        connection.request(method, path, body=body, headers=all_headers)
        response = connection.getresponse()
        return Reply(response.status, response.read().decode("utf-8", errors="replace"))
    finally:
        connection.close()


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    log_path: str
    model_dir: str

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def headers(self) -> dict:
        return {"Authorization": f"Bearer {API_KEY}"}

    def get(self, path: str, auth=True) -> Reply:
        return http_request(self.port, "GET", path, self.headers() if auth else {})

    def post(self, path: str, json=None, auth=True) -> Reply:
        return http_request(self.port, "POST", path, self.headers() if auth else {}, json_body=json)

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def metrics(self) -> dict:
        """Sample lines of /metrics as {"name{labels}": value}."""
        response = self.get("/metrics")
        assert response.status_code == 200, response.text
        samples = {}
        for line in response.text.splitlines():
            if line and not line.startswith("#"):
                series, value = line.rsplit(" ", 1)
                samples[series] = float(value)
        return samples


def binary() -> str:
    path = os.environ.get("FOURBIT_BINARY")
    if not path or not os.path.exists(path):
        pytest.skip("FOURBIT_BINARY is not set to the fourbit binary")
    return path


def start_server(workdir: str, extra_args=(), preset="tiny") -> Server:
    """Serves a fresh `make-model --preset` checkpoint under the preset's name."""
    model_dir = os.path.join(workdir, preset)
    subprocess.run([binary(), "make-model", "--preset", preset, "--out", model_dir],
                   check=True, capture_output=True, timeout=300)
    return start_server_on(model_dir, workdir, preset, extra_args)


def start_server_on(model_dir: str, workdir: str, name: str, extra_args=()) -> Server:
    """`fourbit serve` on an existing checkpoint, its log in WORKDIR/server.log."""
    log_path = os.path.join(workdir, "server.log")
    log = open(log_path, "w")
    process = subprocess.Popen(
        [binary(), "serve", "--model", model_dir, "--port", "0", "--served-model-name", name,
         "--max-model-len", str(MAX_MODEL_LEN), "--api-key", API_KEY, "--api-key", "second-key",
         "--enable-auto-tool-choice", "--sse-ping-interval", "0.2",
         "--max-request-bytes", str(MAX_REQUEST_BYTES), *extra_args],
        stdout=log, stderr=subprocess.STDOUT)
    log.close()
    port = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("fourbit serve exited early:\n" + open(log_path).read())
        match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", open(log_path).read())
        if match:
            port = int(match.group(1))
            try:
                if http_request(port, "GET", "/health", timeout=5).status_code == 200:
                    return Server(process, port, log_path, model_dir)
            except OSError:
                pass
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"fourbit serve not healthy in time (port {port}):\n" + open(log_path).read())


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
            pytest.fail("fourbit serve did not stop within 20 s of SIGTERM:\n" + server.log())
    assert server.process.returncode == 0, \
        f"fourbit serve exited with {server.process.returncode}:\n" + server.log()


@pytest.fixture(scope="module")
def server():
    with tempfile.TemporaryDirectory(prefix="fourbit_server_") as workdir:
        running = start_server(workdir)
        try:
            yield running
        finally:
            stop_server(running)
