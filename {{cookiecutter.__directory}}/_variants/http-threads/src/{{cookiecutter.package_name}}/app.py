"""Your application: its routes are where your code goes.

A Flask application. Each request runs in a worker thread: anything shared between
requests must be thread-safe. Errors answer with a JSON body; an exception a view
raises is logged with its traceback and answered with a 500.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from .limits import HttpSettings


def create_app(settings: HttpSettings) -> Flask:
    """Build the application; the server supplies the settings."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.debug = False  # never on, whatever FLASK_DEBUG says: it would expose code

    @app.get("/")
    def index() -> Response:
        return Response("Hello from {{ cookiecutter.project_slug }}!\n", mimetype="text/plain")

    @app.post("/echo")
    def echo() -> Response:
        return Response(request.get_data(), content_type=request.content_type)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.errorhandler(HTTPException)
    def json_error(error: HTTPException) -> Response:
        """Answer every error with a JSON body: {"error": reason, "status": code}."""
        status = error.code or 500
        response = jsonify(error=error.name, status=status)
        response.status_code = status
        if allow := error.get_response().headers.get("Allow"):
            response.headers["Allow"] = allow  # a 405 says which methods would do
        return response

    return app
