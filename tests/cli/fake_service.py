"""A tiny HTTP server on port 0 standing in for the service's REST API."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

__all__ = ["FakeService"]


class FakeService:
    """A tiny HTTP server: ``routes[(method, path)] = (status, body)``; records each request."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], tuple[int, object]] = {}
        self.requests: list[dict] = []
        self.release = threading.Event()  # a route whose body is ``self.release`` waits for it
        service = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                url = urlsplit(self.path)
                service.requests.append({"method": self.command, "path": url.path,
                                         "query": parse_qsl(url.query, keep_blank_values=True),
                                         "authorization": self.headers.get("Authorization")})
                status, body = service.routes.get((self.command, url.path), (404, {"error": "no route"}))
                if body is service.release:
                    service.release.wait(10)
                    return
                if isinstance(body, (bytes, str)):
                    data, content_type = (body.encode() if isinstance(body, str) else body), "text/html"
                elif body is None:
                    data, content_type = b"", None
                else:
                    data, content_type = json.dumps(body).encode(), "application/json"
                self.send_response(status)
                if content_type:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_DELETE = _answer

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self) -> FakeService:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
