"""The application on Flask's test client: no server process, no sockets."""

from __future__ import annotations

from flask.testing import FlaskClient

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.limits import HttpSettings


def client() -> FlaskClient:
    return create_app(HttpSettings()).test_client()


def test_index_says_hello() -> None:
    response = client().get("/")
    assert response.status_code == 200
    assert response.text == "Hello from {{ cookiecutter.project_slug }}!\n"


def test_echo_returns_the_body_and_its_type() -> None:
    response = client().post(
        "/echo", data=b'{"a": 1}', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200
    assert response.content_type == "application/json"
    assert response.data == b'{"a": 1}'


def test_healthz_and_errors_are_json() -> None:
    assert client().get("/healthz").json == {"status": "ok"}
    missing = client().get("/missing")
    assert (missing.status_code, missing.json) == (
        404,
        {"error": "Not Found", "status": 404},
    )
    wrong_method = client().get("/echo")
    assert wrong_method.status_code == 405
    assert wrong_method.json == {"error": "Method Not Allowed", "status": 405}


def test_a_body_over_the_limit_is_refused() -> None:
    app = create_app(HttpSettings(max_body_bytes=10))
    response = app.test_client().post("/echo", data=b"x" * 11)
    assert response.status_code == 413
    assert response.json == {"error": "Request Entity Too Large", "status": 413}
