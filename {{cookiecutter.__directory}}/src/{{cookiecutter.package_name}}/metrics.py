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
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from .config import ConfigError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

NAMESPACE = "{{ cookiecutter.package_name }}"
PROTOCOL = "{{ cookiecutter.protocol }}"
# Where the workers write their figures. prometheus-client reads it once, as it
# is imported: so it is imported only once the mode is chosen, below.
MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"
# What the server handles, and how one ends: answered, or the handler raised;
# for HTTP, the response's status class.
UNIT = {"tcp": "requests", "http": "requests", "websocket": "messages"}[PROTOCOL]
OUTCOMES = {
    "tcp": ("ok", "error"),
    "http": ("1xx", "2xx", "3xx", "4xx", "5xx"),
    "websocket": ("ok", "error"),
}[PROTOCOL]
REFUSALS = ("cap", "queue", "draining")  # why a client or a request was turned away
ERRORS = ("oversize", "timeout", "malformed", "handler")  # protocol errors, by kind


class Count(Protocol):
    """A counter, as the server updates it."""

    def inc(self, amount: float = ...) -> None: ...


class Level(Count, Protocol):
    """A gauge, as the server updates it."""

    def dec(self, amount: float = ...) -> None: ...

    def set(self, value: float) -> None: ...


class ByLabel(Protocol):
    """A counter with one label, whose values come as they are met."""

    def labels(self, *values: str) -> Count: ...


class Timing(Protocol):
    """A histogram, as the server updates it."""

    def observe(self, amount: float) -> None: ...


class Unmeasured:
    """Any metric while metrics are off (--metrics-port 0): updates cost nothing."""

    def inc(self, amount: float = 1) -> None:
        pass

    def dec(self, amount: float = 1) -> None:
        pass

    def set(self, value: float) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass

    def labels(self, *values: str) -> Unmeasured:
        return self


class Meters:
    """Every figure the server keeps, as prometheus-client metrics; or, when
    metrics are off, nothing at all."""

    def __init__(self, on: bool = True) -> None:
        self.on = on
        if on:
            import prometheus_client  # see above

            # Without a _created series for each one: half the lines, none asked for.
            prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
        self.connections_open = self.gauge(
            "connections_open", "Client connections open now"
        )
        self.connections_accepted = self._counter(
            "connections_accepted", "Client connections accepted"
        )
        self.refused = self._counters(
            "connections_refused",
            "Clients or requests turned away: over the connection cap (cap), "
            "no worker free in time (queue), the server stopping (draining)",
            "reason",
            REFUSALS,
        )
        self.handled = self._counters(
            UNIT, f"{UNIT.capitalize()} handled, by outcome", "outcome", OUTCOMES
        )
        self.duration = self._histogram(
            f"{UNIT.removesuffix('s')}_duration_seconds", "Time the handler took"
        )
        self.in_flight = self.gauge(
            f"{UNIT}_in_flight", f"{UNIT.capitalize()} in the handler now"
        )
        self.received_bytes = self._counter(
            "received_bytes", "Bytes received from clients"
        )
        self.sent_bytes = self._counter("sent_bytes", "Bytes sent to clients")
        self.errors = self._counters(
            "protocol_errors", "Clients answered with an error, by kind", "kind", ERRORS
        )

    def _counter(self, name: str, documentation: str) -> Count:
        if not self.on:
            return Unmeasured()
        from prometheus_client import Counter

        return Counter(name, documentation, namespace=NAMESPACE)

    def _counters(
        self, name: str, documentation: str, label: str, values: Sequence[str]
    ) -> dict[str, Count]:
        """A counter with one label, each of its `values` there from the start."""
        if not self.on:
            return {value: Unmeasured() for value in values}
        from prometheus_client import Counter

        counter = Counter(name, documentation, [label], namespace=NAMESPACE)
        return {value: counter.labels(value) for value in values}

    def counter_by(self, name: str, documentation: str, label: str) -> ByLabel:
        """A counter of a protocol's own, made once per process, by a label whose
        values are not known in advance (see the WebSocket's close codes)."""
        if not self.on:
            return Unmeasured()
        from prometheus_client import Counter

        return Counter(name, documentation, [label], namespace=NAMESPACE)

    def gauge(self, name: str, documentation: str) -> Level:
        """A gauge, made once per process: a model adds its own (see pool.py)."""
        if not self.on:
            return Unmeasured()
        from prometheus_client import Gauge

        # Summed over the workers alive: those that ended are dropped.
        return Gauge(
            name, documentation, namespace=NAMESPACE, multiprocess_mode="livesum"
        )

    def _histogram(self, name: str, documentation: str) -> Timing:
        if not self.on:
            return Unmeasured()
        from prometheus_client import Histogram

        return Histogram(name, documentation, namespace=NAMESPACE)

    def started(self) -> float:
        """A request (a message) goes to the handler: the time, for `finished`."""
        self.in_flight.inc()
        return time.perf_counter()

    def finished(self, started: float, outcome: str) -> None:
        """The handler is done with it."""
        self.duration.observe(time.perf_counter() - started)
        self.in_flight.dec()
        self.handled[outcome].inc()


_meters: Meters | None = None


def measure(on: bool) -> None:
    """Keep this process's metrics from now, or (off) keep none: the server calls
    it as it starts, so that a scrape finds every figure from the first."""
    global _meters  # one set per process
    _meters = Meters(on)


def meters() -> Meters:
    """This process's metrics (kept from the first call, if measure() has not
    been called: as in a test that runs a part of the server alone)."""
    if _meters is None:
        measure(on=True)
    assert _meters is not None
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
