"""The line server's conversation, without I/O, in every thread model.

The framing (protocol.py) turns bytes into requests. This adds what a server
needs around it: requests go to the handler one at a time, in order; what the
framing rejects is answered with an error line; a client must send each line
within the idle timeout, which trickling bytes do not push back; and a stop ends
the connection after the requests in hand. The drivers that run it over sockets
and threads are in threads.py.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections import deque
from collections.abc import Callable

from . import logs, metrics, protocol
from .protocol import Event, LineProtocol, LineSettings, Request
from .threads import Address, Refusal

log = logging.getLogger(__name__)

Handler = Callable[[str], str]


def respond(handler: Handler, text: str, address: Address, request_id: str) -> bytes:
    """Run the handler on one request (a job), under the connection's id: its
    reply line, or an error line if it raises."""
    token = logs.current_request.set(request_id)
    meters = metrics.meters()
    started, outcome = meters.started(), "error"
    try:
        reply = protocol.reply(handler(text))
        outcome = "ok"
        return reply
    except Exception:
        meters.errors["handler"].inc()
        log.exception("handler failed; %s gets an error line", logs.address(address))
        return protocol.error("internal error")
    finally:
        meters.finished(started, outcome)
        logs.current_request.reset(token)


def refusal(reason: str) -> Refusal:
    """How a client is turned away: an error line, then the end."""
    return Refusal(protocol.error(reason))


class LineConversation:
    """One client of the line server: requests out as jobs, replies in."""

    def __init__(
        self, handler: Handler, settings: LineSettings, address: Address
    ) -> None:
        self.handler, self.address = handler, address
        self.idle_timeout = self.send_timeout = settings.idle_timeout
        self.framing = LineProtocol(settings.max_line_bytes)
        self.events: deque[Event] = deque()  # framed, not yet answered
        self.out: list[bytes] = []
        self.working = False  # a request is out as a job
        self.ended = False  # the client has finished sending
        self.stopping = False
        self.finished = False
        self.opened = time.monotonic()
        self.deadline = self.opened + self.idle_timeout
        # On every line logged for this connection, at debug its start and end.
        self.request_id = logs.request_id(None)
        log.debug(
            "%s connected", logs.address(address), extra={"request_id": self.request_id}
        )

    def receive_data(self, data: bytes) -> None:
        if data:
            self.events.extend(self.framing.receive_data(data))
        else:
            self.ended = True
            self.events.extend(self.framing.receive_eof())
        self._answer_rejects()

    def data_to_send(self) -> bytes:
        out, self.out = b"".join(self.out), []
        return out

    def wants_data(self) -> bool:
        # One read's worth of lines at a time: the rest waits in the socket.
        return not (self.events or self.working or self.ended or self.finished)

    def next_job(self) -> Callable[[], bytes] | None:
        if self.working or not self.events:
            return None
        event = self.events.popleft()
        assert isinstance(event, Request)  # rejects are answered as they come
        self.working, self.deadline = True, math.inf
        return functools.partial(
            respond, self.handler, event.text, self.address, self.request_id
        )

    def finish(self, result: bytes) -> None:
        self.working = False
        self.out.append(result)
        self._answer_rejects(answered=True)

    def expire(self) -> None:
        if not self.stopping:  # a stop's grace is over: nothing to explain
            metrics.meters().errors["timeout"].inc()
            self.out.append(protocol.error("idle timeout"))
        self._end()

    def stop(self) -> None:
        self.stopping = True  # an idle client keeps its grace to send one more

    def refuse(self, reason: str) -> None:
        self.working = False
        self.out.append(protocol.error(reason))
        self._end()

    def _answer_rejects(self, answered: bool = False) -> None:
        """Answer what the framing rejected, up to the next request it accepted;
        then end the conversation if it is over, or start the idle deadline."""
        while self.events and not self.working:
            event = self.events[0]
            if isinstance(event, Request):
                return  # for next_job
            self.events.popleft()
            metrics.meters().errors[event.kind].inc()
            self.out.append(protocol.error(event.reason))
            if event.close:
                self._end()
                return
            answered = True
        if self.working or self.finished:
            return
        if self.ended or (answered and self.stopping):
            self._end()
        elif answered:  # idle from now: the clock restarts for the next line
            self.deadline = time.monotonic() + self.idle_timeout

    def _end(self) -> None:
        self.events.clear()
        self.finished, self.deadline = True, math.inf
        milliseconds = (time.monotonic() - self.opened) * 1000
        log.debug(
            "%s ends after %.1f ms",
            logs.address(self.address),
            milliseconds,
            extra={"request_id": self.request_id},
        )
