"""Unit tests of the line framing: bytes in, events out, no sockets."""

from __future__ import annotations

import pytest

from {{ cookiecutter.package_name }}.protocol import (
    LineProtocol,
    Reject,
    Request,
    error,
    reply,
)


def test_one_line_is_one_request() -> None:
    assert LineProtocol().receive_data(b"hello\n") == [Request("hello")]


def test_lines_split_across_reads_and_joined_in_one() -> None:
    framing = LineProtocol()
    assert framing.receive_data(b"hel") == []
    assert framing.receive_data(b"lo\nwor") == [Request("hello")]
    assert framing.receive_data(b"ld\r\n\n") == [Request("world"), Request("")]
    assert framing.receive_eof() == []


def test_a_line_left_unterminated_at_the_end_is_rejected() -> None:
    framing = LineProtocol()
    assert framing.receive_data(b"done\nhalf") == [Request("done")]
    assert framing.receive_eof() == [
        Reject("incomplete line: no newline before the end", close=True)
    ]


def test_a_carriage_return_inside_a_line_rejects_that_line() -> None:
    framing = LineProtocol()
    assert framing.receive_data(b"a\rb\na\r\r\nfine\r\n") == [
        Reject("carriage return inside a line", close=False),
        Reject("carriage return inside a line", close=False),
        Request("fine"),
    ]


def test_a_line_at_the_limit_passes_and_one_byte_more_does_not() -> None:
    framing = LineProtocol(max_line_bytes=5)
    assert framing.receive_data(b"12345\r\n") == [Request("12345")]
    assert framing.receive_data(b"123456\n") == [
        Reject("line too long (limit 5 bytes)", close=True, kind="oversize")
    ]


def test_a_long_line_is_rejected_before_its_end() -> None:
    framing = LineProtocol(max_line_bytes=5)
    assert framing.receive_data(b"1234") == []
    assert framing.receive_data(b"5678") == [
        Reject("line too long (limit 5 bytes)", close=True, kind="oversize")
    ]


def test_requests_before_a_long_line_are_kept() -> None:
    framing = LineProtocol(max_line_bytes=5)
    assert framing.receive_data(b"ok\n" + b"x" * 10) == [
        Request("ok"),
        Reject("line too long (limit 5 bytes)", close=True, kind="oversize"),
    ]


def test_invalid_utf8_rejects_the_line_only() -> None:
    framing = LineProtocol()
    assert framing.receive_data(b"\xff\xfe\nfine\n") == [
        Reject("invalid UTF-8", close=False),
        Request("fine"),
    ]


def test_multibyte_characters_split_across_reads() -> None:
    framing = LineProtocol()
    encoded = "✓\n".encode()
    assert framing.receive_data(encoded[:1]) == []
    assert framing.receive_data(encoded[1:]) == [Request("✓")]


def test_reply_and_error_are_single_lines() -> None:
    assert reply("héllo") == "héllo\n".encode()
    assert error("idle timeout") == b"ERROR idle timeout\n"


@pytest.mark.parametrize("text", ["two\nlines", "carriage\rreturn"])
def test_a_reply_with_a_line_break_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="single line"):
        reply(text)
