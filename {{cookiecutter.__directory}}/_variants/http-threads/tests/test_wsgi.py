"""The bridge to WSGI, called as a worker calls it: no server, no sockets."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import h11
import pytest

from {{ cookiecutter.package_name }}.wsgi import Application, Response, call

StartResponse = Callable[..., Any]


def run(
    app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]],
    target: bytes = b"/",
) -> tuple[Response, dict[str, Any]]:
    """Call `app` on a GET of `target`; its response, and the environ it got."""
    seen: dict[str, Any] = {}

    def recording(environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        seen.update(environ)
        return app(environ, start)

    request = h11.Request(method="GET", target=target, headers=[("Host", "x")])
    application = Application(recording, ("127.0.0.1", 80), False, False, False)
    return call(application, request, b"", ("127.0.0.1", 5555)), seen


def hello(environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
    start("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def test_a_response_is_gathered_whole() -> None:
    response, _ = run(hello)
    assert (response.status, response.reason, response.body) == (200, b"OK", b"hello")


@pytest.mark.parametrize(
    "status", ["200 OK\r\nSet-Cookie: evil=1", "200 OK\n", "OK", "2000 OK", ""]
)
def test_a_status_the_application_gets_wrong_is_a_500(status: str) -> None:
    """A line break in it would end the status line and start headers the
    application never meant to send (response splitting)."""

    def splitting(environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        start(status, [])
        return [b""]

    assert run(splitting)[0].status == 500


def test_an_application_failing_midway_is_a_500() -> None:
    def failing(environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        start("200 OK", [])
        yield b"half"
        raise RuntimeError("midway")

    response = run(failing)[0]
    assert (response.status, response.reason, response.body) == (
        500,
        b"Internal Server Error",
        b"",
    )


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        (b"/a%20b?x=1", "/a b", "x=1"),
        (b"http://example.com/a?x=1", "/a", "x=1"),
        (b"http://example.com?x=1", "/", "x=1"),
        (b"https://example.com", "/", ""),
    ],
)
def test_the_target_becomes_path_and_query(
    target: bytes, path: str, query: str
) -> None:
    _, environ = run(hello, target)
    assert (environ["PATH_INFO"], environ["QUERY_STRING"]) == (path, query)
