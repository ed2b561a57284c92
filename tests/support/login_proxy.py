"""A browser that has logged in, for headless Chromium: a local proxy that adds the login.

Chromium headless cannot answer the basic-auth dialog, and credentials in the page's URL
make its own fetches fail ("Request cannot be constructed from a URL that includes
credentials"). After a real login, a browser sends `Authorization` with every request to
the server; this proxy on 127.0.0.1 does the same for each request it forwards.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-encoding", "host"}


@contextmanager
def logged_in_proxy(target: str, auth: tuple[str, str]) -> Iterator[str]:
    """Serve target through a proxy that logs every request in as `auth`; yield its URL."""
    session = requests.Session()
    session.auth = auth

    class Handler(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            answer = session.request(
                self.command,
                target + self.path,
                headers=headers,
                data=self.rfile.read(length) if length else None,
                timeout=60,
                allow_redirects=False,
            )
            self.send_response(answer.status_code)
            for key, value in answer.headers.items():
                if key.lower() not in HOP_BY_HOP | {"content-length"}:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _forward

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        session.close()
