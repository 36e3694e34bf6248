"""The server's life around requests: SSE pings while a stream waits for a batch slot (and no
role chunk before its first token), SIGTERM with streams in flight, refusing to start on a busy
port or a missing model, and random request mutations that must never crash it."""

import json
import os
import random
import re
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import API_KEY, Server, binary, http_request, start_server, stop_server
from raw_client import assert_healthy, connect, read_response, request_bytes


def stream_request(max_tokens):
    body = json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "go"}],
                       "max_tokens": max_tokens, "ignore_eos": True, "stream": True}).encode()
    return request_bytes("/v1/chat/completions", body)


def read_until(sock, needle: bytes, limit_s=30) -> bytes:
    data = b""
    deadline = time.monotonic() + limit_s
    while needle not in data and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


@pytest.fixture(scope="module")
def one_slot_server():
    with tempfile.TemporaryDirectory(prefix="fourbit_server_") as workdir:
        running = start_server(workdir, ["--max-num-seqs", "1"])
        try:
            yield running
        finally:
            stop_server(running)


def test_waiting_stream_gets_pings_and_no_early_role_chunk(one_slot_server):
    server = one_slot_server
    with connect(server) as first, connect(server) as second:
        first.sendall(stream_request(4000))
        assert b"data: {" in read_until(first, b"data: {")
        # The one batch slot is taken: the second stream waits, and hears only pings meanwhile.
        second.sendall(stream_request(4))
        waiting = read_until(second, b": ping\n\n")
        assert b": ping\n\n" in waiting, waiting
        assert b"data: " not in waiting, "no chunk (not even the role) before the first token"
        first.close()  # frees the slot: the second stream then runs
        rest = read_until(second, b"data: [DONE]")
    events = [e for e in (waiting + rest).split(b"\r\n") if e.startswith(b"data: {")]
    first_chunk = json.loads(events[0].split(b"\n\n")[0][6:])
    assert first_chunk["choices"][0]["delta"]["role"] == "assistant"
    assert len(first_chunk["choices"][0]["token_ids"]) == 1
    assert b"data: [DONE]" in rest
    assert_healthy(server)


def test_sigterm_with_streams_in_flight_exits_cleanly():
    with tempfile.TemporaryDirectory(prefix="fourbit_server_") as workdir:
        server = start_server(workdir)
        sockets = [connect(server) for _ in range(3)]
        for sock in sockets:
            sock.sendall(stream_request(4000))
            assert b"data: {" in read_until(sock, b"data: {")
        start = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=20) == 0, server.log()
        assert time.monotonic() - start < 10, "streams in flight are cancelled, not waited for"
        for sock in sockets:
            sock.settimeout(10)
            read_until(sock, b"never")  # the connection ends
            sock.close()


def test_health_is_503_until_the_model_is_loaded():
    """The port opens before the model loads. The load is held at the chat template, made a
    FIFO here: the server blocks reading it until the test writes the template in."""
    with tempfile.TemporaryDirectory(prefix="fourbit_server_") as workdir:
        model_dir = os.path.join(workdir, "tiny")
        subprocess.run([binary(), "make-model", "--preset", "tiny", "--out", model_dir],
                       check=True, capture_output=True)
        template_path = os.path.join(model_dir, "chat_template.jinja")
        with open(template_path) as f:
            template = f.read()
        os.remove(template_path)
        os.mkfifo(template_path)
        log_path = os.path.join(workdir, "server.log")
        with open(log_path, "w") as log:
            process = subprocess.Popen([binary(), "serve", "--model", model_dir, "--port", "0",
                                        "--served-model-name", "tiny"], stdout=log, stderr=log)
        server = Server(process, 0, log_path, model_dir)
        try:
            deadline = time.monotonic() + 60
            while not server.port and time.monotonic() < deadline:
                match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", server.log())
                server.port = int(match.group(1)) if match else 0
                time.sleep(0.05)
            health = http_request(server.port, "GET", "/health")
            assert health.status_code == 503
            assert health.json()["error"]["message"] == "the model is loading"
            chat = http_request(server.port, "POST", "/v1/chat/completions",
                                json_body={"messages": [{"role": "user", "content": "hi"}]})
            assert chat.status_code == 503
            with open(template_path, "w") as fifo:  # the load goes on
                fifo.write(template)
            deadline = time.monotonic() + 60
            while http_request(server.port, "GET", "/health").status_code != 200:
                assert time.monotonic() < deadline and process.poll() is None, server.log()
                time.sleep(0.05)
            chat = http_request(server.port, "POST", "/v1/chat/completions",
                                json_body={"messages": [{"role": "user", "content": "hi"}],
                                           "max_tokens": 2})
            assert chat.status_code == 200, chat.text
        finally:
            stop_server(server)


def test_busy_port_and_missing_model_fail_cleanly():
    with tempfile.TemporaryDirectory(prefix="fourbit_server_") as workdir:
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        subprocess.run([binary(), "make-model", "--preset", "tiny", "--out", workdir + "/tiny"],
                       check=True, capture_output=True)
        busy = subprocess.run([binary(), "serve", "--model", workdir + "/tiny", "--port", str(port)],
                              capture_output=True, text=True, timeout=60)
        taken.close()
        assert busy.returncode != 0
        assert str(port) in busy.stderr
        missing = subprocess.run([binary(), "serve", "--model", workdir + "/nothing-here", "--port", "0"],
                                 capture_output=True, text=True, timeout=60)
        assert missing.returncode != 0
        assert "nothing-here" in missing.stderr
        assert "Segmentation" not in missing.stderr and missing.returncode > 0


def test_random_mutations_never_crash(one_slot_server):
    server = one_slot_server
    rng = random.Random(7)
    base = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2,
            "temperature": 0.5, "stop": ["x"], "n": 1, "logprobs": True, "top_logprobs": 1,
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
            "tool_choice": "none", "stream": False}
    values = [None, True, 0, -1, 2 ** 70, 1.5, "", "x" * 300, [], [1], {}, {"a": None},
              [{"role": "user"}], "\udcff".encode("utf-8", "surrogatepass").decode("latin-1")]
    statuses = set()
    for i in range(150):
        body = json.loads(json.dumps(base))
        for _ in range(rng.randint(1, 3)):
            key = rng.choice(list(body) + ["messages"])
            if rng.random() < 0.3 and isinstance(body.get(key), list) and body[key] and \
                    isinstance(body[key][0], dict):
                inner = body[key][0]
                inner[rng.choice(list(inner) or ["role"])] = rng.choice(values)
            else:
                body[key] = rng.choice(values)
        raw = json.dumps(body).encode()
        if rng.random() < 0.2:
            cut = rng.randint(0, len(raw))
            raw = raw[:cut] + bytes([rng.randint(0, 255)]) + raw[cut + 1:]
        path = "/v1/chat/completions" if i % 3 else "/v1/completions"
        with connect(server) as sock:
            sock.sendall(request_bytes(path, raw))
            status, _, response = read_response(sock)
        statuses.add(status)
        assert status in (200, 400, 404), (status, raw[:200], response[:300])
        if status != 200:
            assert json.loads(response)["error"]["message"]
    assert 400 in statuses and 200 in statuses
    assert_healthy(server)
