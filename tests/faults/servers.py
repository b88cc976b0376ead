"""Misbehaving infrastructure on 127.0.0.1 for the fault-injection suite.

``ModelServer``: an OpenAI-compatible chat endpoint driven by a script of behaviours (a good
answer, invalid JSON, an empty or length-stopped answer, an HTTP error, a trickle of one byte
every few seconds), with vLLM's ``/health`` and ``/v1/models`` (``server_process`` runs it as a
process of its own that dies on cue). ``FaultyProxy``: an HTTP proxy in front of a real S3 endpoint (moto) that
injects 503s, outages (connections refused or reset) and slowness on command.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def completion(content: str, finish_reason: str = "stop", model: str = "served-model") -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}


@dataclass
class Reply:
    """One scripted behaviour of the model server."""

    status: int = 200
    body: bytes = b""
    trickle_s: float = 0.0  # > 0: send the body one byte at a time, this far apart
    headers: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def ok(content: str, finish_reason: str = "stop") -> Reply:
        return Reply(body=json.dumps(completion(content, finish_reason)).encode())

    @staticmethod
    def error(status: int) -> Reply:
        return Reply(status=status, body=json.dumps({"error": {"message": f"scripted {status}"}}).encode(),
                     headers={"Retry-After": "0"} if status in (429, 503) else {})

    @staticmethod
    def not_json() -> Reply:
        return Reply(body=b'{"id": "c1", "choices": [{"message": ')

    @staticmethod
    def trickle(every_s: float = 2.0) -> Reply:
        return Reply(body=json.dumps(completion("late")).encode() + b" " * 4096, trickle_s=every_s)


class ModelServer:
    """``script(request_body, n) -> Reply``; n counts requests from 1. Records every request.
    Answers ``GET /health`` and ``/v1/models`` as vLLM does (``healthy`` False: 503 on both)."""

    def __init__(self, script: Callable[[dict[str, Any], int], Reply], port: int = 0,
                 model: str = "served-model") -> None:
        self.requests: list[dict[str, Any]] = []
        self.healthy = True
        self.replies: list[Reply] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer._lock:
                    outer.requests.append(body)
                    n = len(outer.requests)
                reply = script(body, n)
                with outer._lock:
                    outer.replies.append(reply)
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply.body)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    if reply.trickle_s > 0:
                        for i in range(len(reply.body)):
                            if outer._stop.is_set():
                                break
                            self.wfile.write(reply.body[i:i + 1])
                            self.wfile.flush()
                            outer._stop.wait(reply.trickle_s)
                    else:
                        self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up on us: that is what a deadline does
                self.close_connection = True

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                path = self.path.split("?", 1)[0].rstrip("/")
                if path not in ("/health", "/v1/models"):
                    status, body = 404, b'{"detail": "Not Found"}'
                elif not outer.healthy:
                    status, body = 503, b'{"error": {"message": "engine not ready"}}'
                else:
                    status = 200
                    body = b"" if path == "/health" else json.dumps(
                        {"object": "list", "data": [{"id": model, "object": "model"}]}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class FaultyProxy:
    """A TCP proxy to an HTTP upstream that misbehaves on command, per connection:

    - ``fail_ratio``: that share of requests get ``503 SlowDown`` without reaching the upstream;
    - ``down``: new connections are accepted and reset at once (an endpoint that is gone);
    - ``delay_s`` with ``slow_ratio``: that share of requests waits this long before it is
      forwarded (a slow endpoint; longer than the client's read timeout, a timeout).
    Counts what it did in ``stats``.
    """

    def __init__(self, upstream: str, seed: int = 0) -> None:
        host, port = upstream.replace("http://", "").split(":")
        self.upstream = (host, int(port))
        self.fail_ratio = 0.0
        self.down = False
        self.delay_s = 0.0
        self.slow_ratio = 1.0
        self.stats = {"requests": 0, "forwarded": 0, "injected_503": 0, "refused": 0, "delayed": 0}
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self.endpoint = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def outage(self, seconds: float) -> threading.Timer:
        """Go down now and come back after ``seconds`` (in the background)."""
        self.down = True
        timer = threading.Timer(seconds, lambda: setattr(self, "down", False))
        timer.daemon = True
        timer.start()
        return timer

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            if self.down:
                with self._lock:
                    self.stats["refused"] += 1
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                return
            while True:
                head, rest = _read_head(client)
                if head is None:
                    return
                if b"\r\nexpect: 100-continue" in head.lower():
                    # Answer the client's 100-continue ourselves (as S3 does) and forward the
                    # request whole: the body is read here before anything goes upstream.
                    client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                    head = b"\r\n".join(line for line in head.split(b"\r\n")
                                         if not line.lower().startswith(b"expect:"))
                length = _content_length(head)
                body = rest
                while len(body) < length:
                    chunk = client.recv(65536)
                    if not chunk:
                        return
                    body += chunk
                with self._lock:
                    self.stats["requests"] += 1
                    fail = self._rng.random() < self.fail_ratio
                    slow = self.delay_s > 0 and self._rng.random() < self.slow_ratio
                if self.down:
                    with self._lock:
                        self.stats["refused"] += 1
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    return
                if fail:
                    with self._lock:
                        self.stats["injected_503"] += 1
                    msg = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                           b"<Message>Please reduce your request rate.</Message></Error>")
                    client.sendall(b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
                                   b"Content-Length: " + str(len(msg)).encode() + b"\r\n\r\n" + msg)
                    continue
                if slow:
                    with self._lock:
                        self.stats["delayed"] += 1
                    time.sleep(self.delay_s)
                upstream = upstream or socket.create_connection(self.upstream)
                upstream.sendall(head + body[:length])
                rest = body[length:]
                response = _relay_response(upstream, client, head)
                with self._lock:
                    self.stats["forwarded"] += 1
                if not response:
                    return
        except OSError:
            return
        finally:
            client.close()
            if upstream is not None:
                upstream.close()

    def close(self) -> None:
        self._closed = True
        self._sock.close()


def _read_head(sock: socket.socket) -> tuple[bytes | None, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head + b"\r\n\r\n", rest


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1].strip())
    return 0


def _relay_response(upstream: socket.socket, client: socket.socket, request_head: bytes) -> bool:
    """Copy one HTTP response from upstream to client; False when the connection must close."""
    head, rest = _read_head(upstream)
    if head is None:
        return False
    client.sendall(head)
    is_head = request_head.split(b" ", 1)[0].upper() == b"HEAD"
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    chunked = any(line.lower().startswith(b"transfer-encoding:") and b"chunked" in line.lower() for line in lines)
    if is_head or status in (204, 304):
        return True
    if chunked:
        data = rest
        while not data.endswith(b"0\r\n\r\n"):
            chunk = upstream.recv(65536)
            if not chunk:
                break
            data += chunk
        client.sendall(data)
        return True
    if not any(line.lower().startswith(b"content-length:") for line in lines):
        # Delimited by the connection closing.
        client.sendall(rest)
        while chunk := upstream.recv(65536):
            client.sendall(chunk)
        return False
    length = _content_length(head)
    body = rest
    while len(body) < length:
        chunk = upstream.recv(65536)
        if not chunk:
            return False
        body += chunk
    client.sendall(body)
    return True
