"""A loopback HTTP server for download tests: serves bytes by path, honours Range, and misbehaves on request."""
from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class Server:
    """What the server serves and how; tests change the fields between requests.

    Args:
        url: ``http://127.0.0.1:PORT``, set when it starts.
        files: body by request path, e.g. ``{"/cyclegan/horse2zebra.zip": b"..."}``; others get a 404.
        requests: ``(path, Range header)`` of every request received.
        cut_after: send only this many body bytes of the next response, then hang up.
        honour_range: answer a Range request with 206 (or 416 past the end); else send the whole file.
        length_offset: added to the true Content-Length: > 0 announces more bytes than are sent,
            < 0 fewer than are sent.
        drip_s: when > 0, send the body one byte at a time with this pause between bytes.
        drip_head: drip the status line and headers too (needs ``drip_s``).
    """

    url: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    cut_after: int | None = None
    honour_range: bool = True
    length_offset: int = 0
    drip_s: float = 0.0
    drip_head: bool = False
    stopping: threading.Event = field(default_factory=threading.Event)


@contextlib.contextmanager
def serve() -> Iterator[Server]:
    """Run a threaded server on 127.0.0.1 and an ephemeral port for the duration of the block."""
    state = Server()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            state.requests.append((self.path, self.headers.get("Range")))
            body = state.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            start, wanted = 0, self.headers.get("Range")
            if wanted and state.honour_range:
                start = int(wanted.removeprefix("bytes=").rstrip("-"))
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            rest = body[start:]
            self.send_header("Content-Length", str(len(rest) + state.length_offset))
            if state.cut_after is not None:
                rest, state.cut_after, self.close_connection = rest[: state.cut_after], None, True
            with contextlib.suppress(OSError):  # the client gave up: that is what drip tests want
                if state.drip_s and state.drip_head:
                    head, self._headers_buffer = b"".join(self._headers_buffer) + b"\r\n", []
                    self._drip(head)
                else:
                    self.end_headers()
                if state.drip_s:
                    self._drip(rest)
                else:
                    self.wfile.write(rest)

        def _drip(self, data: bytes) -> None:
            for i in range(len(data)):
                if state.stopping.wait(state.drip_s):
                    return
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        state.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()
