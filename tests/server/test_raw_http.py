"""`fourbit serve` at the byte level, over plain sockets: malformed bodies, truncated, slow and
stalled requests, oversized bodies, garbage, and a client that leaves mid-stream. After each, the
server must still answer (no crash, no stuck worker)."""

import json
import socket
import time

import pytest

from conftest import API_KEY, MAX_REQUEST_BYTES
from raw_client import assert_healthy, chat_body, connect, exchange, read_response, request_bytes


def assert_error(status, body, expected_status):
    assert status == expected_status, body
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    return error


@pytest.mark.parametrize("body", [
    b"{", b"{\"messages\": [", b"not json", b"", b"[1, 2, 3]", b"null", b"\"a string\"",
    b"{\"messages\": \"\xff\xfe\"}", b"{\"model\": \"tiny\"} trailing",
    b"{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": 1e999}",
    b"{\"a\": " + b"[" * 50000 + b"]" * 50000 + b"}",
    b"{\"messages\": [{\"role\": \"user\", \"content\": {\"nested\": true}}]}",
    b"{\"messages\": [{\"role\": \"tool\", \"content\": \"result without a call\"}]}",
])
def test_malformed_bodies_are_400(server, body):
    status, headers, response = exchange(server, request_bytes("/v1/chat/completions", body))
    assert_error(status, response, 400)
    assert headers["content-type"].startswith("application/json")
    assert_healthy(server)


def test_completions_malformed_and_bad_ids(server):
    for body in (b"{}", b"{\"prompt\": 3}", b"{\"prompt\": [1, 99999]}", b"{\"prompt\": \"\"}"):
        status, _, response = exchange(server, request_bytes("/v1/completions", body))
        assert_error(status, response, 400)
    assert_healthy(server)


def test_truncated_request_then_close(server):
    """Content-Length larger than what is sent, then the client closes: nothing breaks."""
    for _ in range(3):
        sock = connect(server)
        body = chat_body()
        sock.sendall(request_bytes("/v1/chat/completions", body[:10], content_length=len(body) + 100))
        sock.close()
    headers_only = connect(server)
    headers_only.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Le")
    headers_only.close()
    assert_healthy(server)


def test_slow_request_is_served(server):
    """A body that arrives in pieces with pauses (each under the read timeout) is served."""
    body = chat_body()
    raw = request_bytes("/v1/chat/completions", body)
    with connect(server) as sock:
        for start in range(0, len(raw), len(raw) // 5 + 1):
            sock.sendall(raw[start:start + len(raw) // 5 + 1])
            time.sleep(0.4)
        status, _, response = read_response(sock)
    assert status == 200, response
    assert json.loads(response)["object"] == "chat.completion"


def test_stalled_request_is_dropped(server):
    """A client that stops sending mid-body is cut off by the read timeout, not waited on forever."""
    body = chat_body()
    with connect(server, timeout=30) as sock:
        sock.sendall(request_bytes("/v1/chat/completions", body[:5], content_length=len(body)))
        start = time.monotonic()
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        waited = time.monotonic() - start
    assert waited < 20, "the server should give up on a stalled body"
    if data:
        assert data.startswith(b"HTTP/1.1 400"), data[:100]
    assert_healthy(server)


def test_oversized_body_is_413(server):
    big = json.dumps({"model": "tiny", "messages": [
        {"role": "user", "content": "x" * (MAX_REQUEST_BYTES + 10)}]}).encode()
    with connect(server) as sock:
        try:
            sock.sendall(request_bytes("/v1/chat/completions", big))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading everything
        status, _, response = read_response(sock)
    error = assert_error(status, response, 413)
    assert error["code"] == "request_too_large"
    # A huge declared length with no body: refused too, without waiting for the bytes.
    with connect(server) as sock:
        sock.sendall(request_bytes("/v1/chat/completions", b"", content_length=10 ** 12))
        sock.shutdown(socket.SHUT_WR)
        try:
            status, _, response = read_response(sock)
            assert status == 413
        except ConnectionError:
            pass  # closing without an answer is acceptable here
    assert_healthy(server)


def test_garbage_and_odd_requests(server):
    for raw in (b"HELLO\r\n\r\n", b"GET\r\n\r\n", b"\x00\x01\x02\r\n\r\n",
                b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 100000 + b"\r\n\r\n"):
        with connect(server) as sock:
            try:
                sock.sendall(raw)
                sock.shutdown(socket.SHUT_WR)
                data = sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                data = b""
        assert not data or data.startswith(b"HTTP/1.1 4"), data[:80]
    assert_healthy(server)


def test_routes_and_methods(server):
    status, _, body = exchange(server, request_bytes("/v1/nothing", b"", method="GET"))
    assert_error(status, body, 404)
    status, _, body = exchange(server, request_bytes("/v1/chat/completions", b"", method="GET"))
    assert status in (404, 405)
    status, _, body = exchange(server, request_bytes("/health", b"", method="GET"))
    assert status == 200


def test_missing_key_is_401_but_health_is_open(server):
    raw = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n" % len(chat_body())) + chat_body()
    status, _, body = exchange(server, raw)
    error = assert_error(status, body, 401)
    assert error["type"] == "authentication_error"
    # The refused request's body was consumed: the same connection serves the next request.
    with connect(server) as sock:
        sock.sendall(raw)
        assert read_response(sock)[0] == 401
        sock.sendall(request_bytes("/v1/chat/completions", chat_body()))
        assert read_response(sock)[0] == 200
    status, _, _ = exchange(server, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200


def test_chunked_request_body(server):
    body = chat_body()
    raw = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
           API_KEY.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n" +
           b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    status, _, response = exchange(server, raw)
    assert status == 200, response


def test_keep_alive_serves_several_requests(server):
    with connect(server) as sock:
        for _ in range(3):
            sock.sendall(request_bytes("/v1/chat/completions", chat_body()))
            status, _, body = read_response(sock)
            assert status == 200, body


def test_sse_wire_format_and_disconnect_mid_stream(server):
    body = chat_body(stream=True, max_tokens=4000, ignore_eos=True,
                     stream_options={"include_usage": True})
    with connect(server) as sock:
        sock.sendall(request_bytes("/v1/chat/completions", body))
        data = b""
        while data.count(b"\n\n") < 3:
            data += sock.recv(65536)
    # The client is gone after 3 events; the head and events were well formed.
    head, events = data.split(b"\r\n\r\n", 1)
    assert b"Content-Type: text/event-stream" in head
    assert b"Transfer-Encoding: chunked" in head
    first_event = events.split(b"\r\n", 1)[1].split(b"\n\n")[0]
    assert first_event.startswith(b"data: {")
    chunk = json.loads(first_event[6:])
    assert chunk["choices"][0]["delta"]["role"] == "assistant"
    assert len(chunk["choices"][0]["token_ids"]) == 1
    # The engine drops the request: nothing stays running.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        samples = server.metrics()
        if samples['fourbit:num_requests_running{model_name="tiny"}'] == 0:
            break
        time.sleep(0.1)
    assert samples['fourbit:num_requests_running{model_name="tiny"}'] == 0
    assert samples['fourbit:request_success_total{finished_reason="abort",model_name="tiny"}'] >= 1
    assert_healthy(server)


def test_non_streaming_disconnect_cancels(server):
    before = server.metrics()['fourbit:request_success_total{finished_reason="abort",model_name="tiny"}']
    body = chat_body(max_tokens=4000, ignore_eos=True)
    sock = connect(server)
    sock.sendall(request_bytes("/v1/chat/completions", body))
    time.sleep(0.1)
    sock.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        samples = server.metrics()
        if samples['fourbit:num_requests_running{model_name="tiny"}'] == 0:
            break
        time.sleep(0.05)
    assert samples['fourbit:num_requests_running{model_name="tiny"}'] == 0
    after = samples['fourbit:request_success_total{finished_reason="abort",model_name="tiny"}']
    assert after == before + 1, "the abandoned request was cancelled, not run to its end"
    assert_healthy(server)
