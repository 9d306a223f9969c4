"""One process, or several sharing one port: a small pre-fork supervisor.

With one worker (the default) the server runs in this process. With more, this
process binds the port, forks the workers, which all accept from that one socket,
and watches over them: a worker that dies is logged and replaced, and SIGTERM or
SIGINT stops every worker gracefully before this process exits: with status 0, or
1 if a worker's drain ran out of time, as a single server does. Each worker is
the same server a single process is, with its own limits and its own graceful stop.

The workers inherit one socket rather than each binding the port with
SO_REUSEPORT: then a second copy of the server on the same port fails at once
instead of silently taking a share of the traffic, and a stuck worker leaves its
connections to the others instead of stranding those the kernel hashed to it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import NoReturn

from . import logs, metrics
from .config import ConfigError, Settings

log = logging.getLogger(__name__)

BACKLOG = 1024  # clients the kernel holds until they are accepted: a burst waits
# there instead of having its connections dropped (capped by net.core.somaxconn)
DRAIN_TIMED_OUT = 1  # the exit status of a stop that had to cut requests off
RESTART_DELAY_SECONDS = 1.0  # for a worker that dies this soon after it started
MAX_RESTART_DELAY = 30.0  # however often it dies at once
KILL_AFTER_SECONDS = 5.0  # past the shutdown timeout, for a worker that never ends
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
# What a server handles: a stop, and SIGHUP to reload its TLS certificate.
SERVER_SIGNALS = STOP_SIGNALS | {signal.SIGHUP}
# Taken by sigwait: those, passed on to the workers, a worker's end, the timer for
# what is due next.
SIGNALS = SERVER_SIGNALS | {signal.SIGCHLD, signal.SIGALRM}

ServeSocket = Callable[[socket.socket], None]


def serve(settings: Settings, serve_socket: ServeSocket) -> int:
    """Bind the port, then serve it here or in `settings.workers` processes; return
    the exit status."""
    sock = listen(settings.host, settings.port)
    if settings.workers == 1:
        metrics.measure(on=settings.metrics_port != 0)
        metrics.serve(settings.host, settings.metrics_port)
        serve_socket(sock)
        return 0
    return Supervisor(sock, serve_socket, settings).run()


def give_up(busy: int, shutdown_timeout: float) -> NoReturn:
    """End a drain that ran out of time: say so, and exit at once with a status
    that an orchestrator sees (a thread still in the handler would hold up a
    normal exit)."""
    log.warning(
        "%d connections still busy after %gs; exiting with status %d",
        busy,
        shutdown_timeout,
        DRAIN_TIMED_OUT,
    )
    logging.shutdown()
    os._exit(DRAIN_TIMED_OUT)


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on the first address `host` resolves to."""
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        )[0]
        sock = socket.create_server(address, family=family, backlog=BACKLOG)
    except OSError as error:
        raise cannot_listen(host, port, error) from None
    # Accepting never blocks: a worker that loses the race for a connection to
    # another goes back to waiting rather than hanging in accept().
    sock.setblocking(False)
    return sock


def cannot_listen(host: str, port: int, error: OSError) -> ConfigError:
    """The error for an address the server cannot bind, in one line."""
    if error.errno and error.errno > 0:  # the OS's words, whichever wrapper says it
        reason = os.strerror(error.errno)
    else:  # a name that does not resolve
        reason = error.strerror or str(error)
    return ConfigError(f"cannot listen on {logs.address((host, port))}: {reason}")


@dataclasses.dataclass
class Worker:
    number: int
    started: float


class Supervisor:
    """Forks the workers, replaces those that die, and stops them all on a signal."""

    def __init__(
        self, sock: socket.socket, serve_socket: ServeSocket, settings: Settings
    ) -> None:
        self.sock = sock
        self.serve_socket = serve_socket
        self.settings = settings
        self.count = settings.workers
        self.shutdown_timeout = settings.shutdown_timeout
        self.workers: dict[int, Worker] = {}  # by process id
        self.restarts: dict[int, float] = {}  # worker number: when to start it
        self.failures: dict[int, int] = {}  # worker number: quick deaths in a row
        # Workers read from it; it ends when this process does, however it ends,
        # and they stop with it rather than serve on as orphans.
        self.lifeline, self.lifeline_end = os.pipe()

    def run(self) -> int:
        """Serve until a stop signal; return the exit status."""
        # Taken by sigwait below. Blocked before the first fork, the stop signals
        # stay blocked in a worker until its server is ready to take them.
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        # Before the first fork: the workers count in files there, summed here.
        self.metrics = metrics.share_between_workers()
        try:
            metrics.serve_workers(
                self.settings.host, self.settings.metrics_port, self.metrics
            )
        except ConfigError:
            metrics.remove(self.metrics)
            raise
        for number in range(1, self.count + 1):
            self.start(number)
        address = logs.address(self.sock.getsockname())
        log.info("listening on %s (%d worker processes)", address, self.count)
        signum = self.supervise()
        return self.stop(signum)

    def start(self, number: int) -> None:
        try:
            pid = os.fork()
        except OSError as error:  # out of memory or processes, for now
            log.error("cannot start worker %d: %s", number, error)
            self.restart_later(number)
            return
        if pid == 0:
            os.close(self.lifeline_end)
            metrics.measure(on=self.settings.metrics_port != 0)
            work(self.sock, self.serve_socket, self.lifeline)
        self.workers[pid] = Worker(number, time.monotonic())
        log.info("started worker %d (pid %d)", number, pid)

    def restart_later(self, number: int) -> None:
        """Start worker `number` again after a delay that doubles with each
        failure in a row: one that dies as it starts must not spin."""
        failures = self.failures[number] = self.failures.get(number, 0) + 1
        delay = min(RESTART_DELAY_SECONDS * 2 ** (failures - 1), MAX_RESTART_DELAY)
        self.restarts[number] = time.monotonic() + delay

    def supervise(self) -> signal.Signals:
        """Replace workers that die until a stop signal comes; return it."""
        while True:
            self.start_due()
            signum = signal.sigwait(SIGNALS)
            if signum in STOP_SIGNALS:
                return signal.Signals(signum)
            if signum == signal.SIGHUP:
                log.info("passing SIGHUP on to %d workers", len(self.workers))
                for pid in self.workers:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGHUP)
            for pid, worker, status in self.reap():
                log.warning(
                    "worker %d (pid %d) %s; starting another",
                    worker.number,
                    pid,
                    ended(status),
                )
                if time.monotonic() - worker.started < RESTART_DELAY_SECONDS:
                    self.restart_later(worker.number)
                else:
                    self.failures.pop(worker.number, None)
                    self.restarts[worker.number] = time.monotonic()

    def start_due(self) -> None:
        """Start the workers whose restart is due; SIGALRM wakes for the next."""
        now = time.monotonic()
        for number, when in list(self.restarts.items()):
            if when <= now:
                del self.restarts[number]
                self.start(number)
        if self.restarts:
            wait = min(self.restarts.values()) - time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, max(wait, 0.001))

    def reap(self) -> Iterator[tuple[int, Worker, int]]:
        """The workers that have ended, with their wait status. Other children
        are reaped and passed over: as PID 1 in a container, this process
        inherits every orphan."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:  # no children left
                return
            if pid == 0:
                return
            if (worker := self.workers.pop(pid, None)) is not None:
                metrics.worker_ended(pid, self.metrics)
                yield pid, worker, status

    def stop(self, signum: signal.Signals) -> int:
        """Let every worker drain, then return the exit status: 0 if every worker
        drained in time. Kill those that never end."""
        log.info("stopping on %s: %d workers", signum.name, len(self.workers))
        # First, this process's own copy of the listening socket is closed: while
        # it is open the kernel goes on completing handshakes that no worker,
        # once stopping, would accept.
        self.sock.close()
        status = 0
        for pid in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        give_up = self.shutdown_timeout + KILL_AFTER_SECONDS
        deadline = time.monotonic() + give_up
        signal.setitimer(signal.ITIMER_REAL, give_up)
        while self.workers and time.monotonic() < deadline:
            signal.sigwait(SIGNALS)  # a second stop signal changes nothing
            for pid, worker, ending in self.reap():
                if ending != 0:
                    status = DRAIN_TIMED_OUT
                    log.warning(
                        "worker %d (pid %d) %s", worker.number, pid, ended(ending)
                    )
        for pid, worker in self.workers.items():
            status = DRAIN_TIMED_OUT
            log.warning(
                "worker %d (pid %d) did not stop; killing it", worker.number, pid
            )
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        signal.setitimer(signal.ITIMER_REAL, 0)
        metrics.remove(self.metrics)
        log.info("stopped")
        return status


def work(sock: socket.socket, serve_socket: ServeSocket, lifeline: int) -> NoReturn:
    """A worker's life: serve the inherited socket until stopped, then exit."""
    status = 1
    try:
        # Started with the server's signals blocked, as every thread of a worker
        # is: each server unblocks them where it takes them.
        threading.Thread(target=stop_with, args=(lifeline,), daemon=True).start()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS - SERVER_SIGNALS)
        serve_socket(sock)
        status = 0
    except Exception:
        log.exception("worker failed")
    # Exit as a single server does, waiting for the threads that finish turning
    # clients away; SystemExit unwinds past the supervisor's code, running none.
    sys.exit(status)


def stop_with(lifeline: int) -> None:
    """In a worker: stop gracefully once the supervisor has gone."""
    with contextlib.suppress(OSError):
        os.read(lifeline, 1)  # nothing is ever written: this waits for its end
    log.warning("the supervisor has gone; stopping")
    os.kill(os.getpid(), signal.SIGTERM)


def ended(status: int) -> str:
    """How a worker ended, from its wait status."""
    code = os.waitstatus_to_exitcode(status)
    if code >= 0:
        return f"exited with status {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:  # one without a name (a real-time signal)
        return f"was killed by signal {-code}"
