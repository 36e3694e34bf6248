"""Plain-socket HTTP for the server tests: requests as bytes, responses read by hand (fixed
length or chunked), so tests can send what no HTTP library would."""

import json
import socket

from conftest import API_KEY


def connect(server, timeout=30):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    return sock


def request_bytes(path, body: bytes, method="POST", headers=None, content_length=None):
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1",
             f"Authorization: Bearer {API_KEY}", "Content-Type: application/json",
             f"Content-Length: {len(body) if content_length is None else content_length}"]
    lines += list(headers or [])
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def read_response(sock):
    """(status, headers dict, body bytes) of one response; reads until the body is complete."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a response: %r" % data)
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    if "content-length" in headers:
        length = int(headers["content-length"])
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return status, headers, rest[:length]
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            while b"\r\n" not in rest:
                rest += sock.recv(65536)
            size_line, rest = rest.split(b"\r\n", 1)
            size = int(size_line, 16)
            while len(rest) < size + 2:
                rest += sock.recv(65536)
            body += rest[:size]
            rest = rest[size + 2:]
            if size == 0:
                return status, headers, body
    return status, headers, rest


def exchange(server, raw: bytes, timeout=30):
    with connect(server, timeout) as sock:
        sock.sendall(raw)
        return read_response(sock)


def chat_body(**extra):
    return json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "hi"}],
                       "max_tokens": 3, **extra}).encode()


def assert_healthy(server):
    assert server.process.poll() is None, "the server died:\n" + server.log()
    status, _, _ = exchange(server, request_bytes("/health", b"", method="GET"))
    assert status == 200
    status, _, body = exchange(server, request_bytes("/v1/chat/completions", chat_body()))
    assert status == 200, body
    assert json.loads(body)["usage"]["completion_tokens"] >= 1
