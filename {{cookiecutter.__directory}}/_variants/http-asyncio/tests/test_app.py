"""The application on aiohttp's test client: no server process, no sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.limits import HttpSettings

Client = TestClient[web.Request, web.Application]


def with_client(check: Callable[[Client], Awaitable[None]]) -> None:
    async def run() -> None:
        async with TestClient(TestServer(create_app(HttpSettings()))) as client:
            await check(client)

    asyncio.run(run())


def test_index_says_hello() -> None:
    async def check(client: Client) -> None:
        response = await client.get("/")
        assert response.status == 200
        assert await response.text() == "Hello from {{ cookiecutter.project_slug }}!\n"

    with_client(check)


def test_echo_returns_the_body_and_its_type() -> None:
    async def check(client: Client) -> None:
        response = await client.post(
            "/echo", data=b'{"a": 1}', headers={"Content-Type": "application/json"}
        )
        assert response.status == 200
        assert response.content_type == "application/json"
        assert await response.read() == b'{"a": 1}'

    with_client(check)


def test_healthz_and_errors_are_json() -> None:
    async def check(client: Client) -> None:
        assert await (await client.get("/healthz")).json() == {"status": "ok"}
        missing = await client.get("/missing")
        assert missing.status == 404
        assert await missing.json() == {"error": "Not Found", "status": 404}
        wrong_method = await client.get("/echo")
        assert wrong_method.status == 405
        assert await wrong_method.json() == {
            "error": "Method Not Allowed",
            "status": 405,
        }

    with_client(check)
