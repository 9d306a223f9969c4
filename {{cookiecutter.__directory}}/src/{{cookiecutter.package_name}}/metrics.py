"""Prometheus metrics, on a listener of their own: what dashboards and alerts read.

prometheus-client serves them at ``http://HOST:METRICS_PORT/metrics``, away from
the public port, in the same way for every protocol. Names follow Prometheus'
conventions: the package's name first, base units, ``_total`` on counters.

Under ``--workers N`` each worker writes its figures to files in a directory that
the supervisor makes (prometheus-client's multiprocess mode), and the supervisor
serves their sum: one scrape is the whole server. A worker that ends leaves its
counts in the totals, so a restart resets nothing; its gauges go with it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from typing import TYPE_CHECKING

from .config import ConfigError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
{%- if cookiecutter.protocol == "websocket" %}
    from websockets.frames import Close
{%- endif %}

NAMESPACE = "{{ cookiecutter.package_name }}"
# Where the workers write their figures. prometheus-client reads it once, as it
# is imported: so it is imported only once the mode is chosen, below.
MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"
{%- if cookiecutter.protocol == "http" %}
# How a request ended: its status class.
OUTCOMES = ("1xx", "2xx", "3xx", "4xx", "5xx")
{%- else %}
# How a {{ "message" if cookiecutter.protocol == "websocket" else "request" }} ended: answered, or the handler raised.
OUTCOMES = ("ok", "error")
{%- endif %}
REFUSALS = ("cap", "queue", "draining")  # why a client or a request was turned away
ERRORS = ("oversize", "timeout", "malformed", "handler")  # protocol errors, by kind
UNIT = "{{ 'messages' if cookiecutter.protocol == 'websocket' else 'requests' }}"
{%- if cookiecutter.protocol == "websocket" %}
# The close codes the server sends a client that broke the protocol, by kind.
CLOSE_ERRORS = {1009: "oversize", 1002: "malformed", 1007: "malformed"}
PING_TIMEOUT = (1011, "keepalive ping timeout")  # websockets' words for it
{%- endif %}


class Meters:
    """Every figure the server keeps, as prometheus-client metrics."""

    def __init__(self) -> None:
        import prometheus_client  # see above
        from prometheus_client import Counter, Gauge, Histogram

        # Without a _created series for every one: half the lines, none asked for.
        prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
        self.connections_open = Gauge(
            "connections_open",
            "Client connections open now",
            namespace=NAMESPACE,
            multiprocess_mode="livesum",
        )
        self.connections_accepted = Counter(
            "connections_accepted", "Client connections accepted", namespace=NAMESPACE
        )
        refused = Counter(
            "connections_refused",
            "Clients or requests turned away: over the connection cap (cap), "
            "no worker free in time (queue), the server stopping (draining)",
            ["reason"],
            namespace=NAMESPACE,
        )
        self.refused = {reason: refused.labels(reason) for reason in REFUSALS}
        handled = Counter(
            UNIT,
            f"{UNIT.capitalize()} handled, by outcome",
            ["outcome"],
            namespace=NAMESPACE,
        )
        self.handled = {outcome: handled.labels(outcome) for outcome in OUTCOMES}
        self.duration = Histogram(
            f"{UNIT.removesuffix('s')}_duration_seconds",
            "Time the handler took",
            namespace=NAMESPACE,
        )
        self.in_flight = Gauge(
            f"{UNIT}_in_flight",
            f"{UNIT.capitalize()} in the handler now",
            namespace=NAMESPACE,
            multiprocess_mode="livesum",
        )
        self.received_bytes = Counter(
            "received_bytes", "Bytes received from clients", namespace=NAMESPACE
        )
        self.sent_bytes = Counter(
            "sent_bytes", "Bytes sent to clients", namespace=NAMESPACE
        )
        errors = Counter(
            "protocol_errors",
            "Clients answered with an error, by kind",
            ["kind"],
            namespace=NAMESPACE,
        )
        self.errors = {kind: errors.labels(kind) for kind in ERRORS}
{%- if cookiecutter.concurrency == "threadpool" %}
        self.busy_workers = Gauge(
            "pool_busy_workers",
            "Worker threads running a handler now",
            namespace=NAMESPACE,
            multiprocess_mode="livesum",
        )
        self.queued = Gauge(
            f"pool_queued_{UNIT}",
            f"{UNIT.capitalize()} waiting for a free worker",
            namespace=NAMESPACE,
            multiprocess_mode="livesum",
        )
{%- endif %}

    def started(self) -> float:
        """A {{ "message" if cookiecutter.protocol == "websocket" else "request" }} goes to the handler: the time, for `finished`."""
        self.in_flight.inc()
        return time.perf_counter()

    def finished(self, started: float, outcome: str) -> None:
        """The handler is done with it."""
        self.duration.observe(time.perf_counter() - started)
        self.in_flight.dec()
        self.handled[outcome].inc()
{%- if cookiecutter.protocol == "websocket" %}

    def closed(self, close: Close | None) -> None:
        """A connection has ended with the server's close frame, if it sent one:
        count the protocol error it told the client of, if any."""
        if close is None:
            return
        if (close.code, close.reason) == PING_TIMEOUT:
            self.errors["timeout"].inc()
        elif (kind := CLOSE_ERRORS.get(close.code)) is not None:
            self.errors[kind].inc()
{%- endif %}


_meters: Meters | None = None


def meters() -> Meters:
    """This process's metrics, made the first time they are asked for."""
    global _meters  # one set per process
    if _meters is None:
        _meters = Meters()
    return _meters


def serve(host: str, port: int, registry: CollectorRegistry | None = None) -> None:
    """Serve /metrics on a thread of its own; port 0 serves nothing."""
    if not port:
        return
    from prometheus_client import REGISTRY, start_http_server

    try:
        start_http_server(port, addr=host, registry=registry or REGISTRY)
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise ConfigError(f"cannot serve metrics on {host}:{port}: {reason}") from None


def share_between_workers() -> str:
    """Make the directory where every worker writes its figures; its path.

    Called by the supervisor before it forks a worker, and before anything in
    this process has imported prometheus-client.
    """
    directory = tempfile.mkdtemp(prefix=f"{NAMESPACE}-metrics-")
    os.environ[MULTIPROCESS_DIRECTORY] = directory
    return directory


def serve_workers(host: str, port: int, directory: str) -> None:
    """Serve the sum of what every worker has written in `directory`."""
    from prometheus_client import CollectorRegistry, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    serve(host, port, registry)


def worker_ended(pid: int, directory: str) -> None:
    """Drop the gauges of a worker that has ended: they no longer hold."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


def remove(directory: str) -> None:
    """The server has stopped: its figures go with it."""
    shutil.rmtree(directory, ignore_errors=True)
