"""The WebSocket conversation without I/O: bytes in, jobs out, as a driver
calls it; the client is websockets' own sans-I/O client."""

from __future__ import annotations

from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.uri import parse_uri

from {{ cookiecutter.package_name }}.conversation import WebSocketConversation
from {{ cookiecutter.package_name }}.handler import handle
from {{ cookiecutter.package_name }}.limits import WebSocketSettings

ADDRESS = ("127.0.0.1", 5555)


def opened(settings: WebSocketSettings) -> tuple[WebSocketConversation, ClientProtocol]:
    """A conversation and a client past the opening handshake."""
    conversation = WebSocketConversation(handle, settings, ADDRESS)
    client = ClientProtocol(
        parse_uri("ws://127.0.0.1/"),
        extensions=[ClientPerMessageDeflateFactory()] if settings.compression else None,
        max_size=None,
    )
    client.send_request(client.connect())
    conversation.receive_data(b"".join(client.data_to_send()))
    client.receive_data(conversation.data_to_send())
    assert client.handshake_exc is None
    client.events_received()  # the handshake's response
    return conversation, client


def test_compressed_messages_are_held_back_to_the_queue_bound() -> None:
    """60 messages of 1 MiB, deflated to a few hundred bytes each, arrive in one
    read: no more than max_queue of them are ever inflated at once."""
    settings = WebSocketSettings(compression=True, max_queue=4)
    conversation, client = opened(settings)
    message = "x" * settings.max_message_bytes
    for _ in range(60):
        client.send_text(message.encode())
    sent = b"".join(client.data_to_send())
    assert len(sent) < 60 * 2048  # small enough to come in one read
    conversation.receive_data(sent)
    replies = 0
    while (job := conversation.next_job()) is not None:
        assert len(conversation.messages) < settings.max_queue
        conversation.finish(job())
        client.receive_data(conversation.data_to_send())
        replies += len(client.events_received())
    assert replies == 60


def test_a_plain_request_with_bytes_after_it_is_answered() -> None:
    """What follows a plain HTTP request is no frame: the request is answered,
    then the connection ends."""
    conversation = WebSocketConversation(handle, WebSocketSettings(), ADDRESS)
    conversation.receive_data(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n\r\n")
    assert conversation.data_to_send().startswith(b"HTTP/1.1 200 OK\r\n")
    assert conversation.finished
