"""URLs a producer can smuggle towards MsgFlash: refused with a reason, or taken exactly as sent."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.contract.commands import RawCommand, parse_command
from service.contract.errors import InvalidCommand
from service.contract.urls import HTTP_URL_PATTERN, MAX_URL_CHARS, url_problem

GOOD = "https://cdn.example.com/a.png"


def _send(message: dict[str, object]) -> RawCommand:
    envelope = {
        "specversion": "1.0",
        "id": "1",
        "source": "tests",
        "type": "msgflash.message.send",
        "data": {"to": "+33612345678", "message": message},
    }
    return RawCommand(json.dumps(envelope).encode(), "application/json")


def _problem_on(message: dict[str, object]) -> tuple[str, str]:
    with pytest.raises(InvalidCommand) as caught:
        parse_command(_send(message), max_bytes=65536)
    (problem,) = caught.value.details
    return problem.field, problem.message


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://cdn.example.com/a\x00.png", "U+0000"),
        ("https://cdn.example.com/a.png\r\nX-Injected: 1", "U+000D"),
        ("https://cdn.example.com/a b.png", "U+0020"),
        ("https://cdn.example.com/\u202egnp.exe", "U+202E"),
        ("https://cdn.example.com/a.png\t", "U+0009"),
        ("https://cdn.example.com/a.png\n", "U+000A"),
        ("javascript:alert(1)//https://x", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("https://admin:hunter2@cdn.example.com/a.png", "credentials"),
        ("https://cdn.example.com:99999/a.png", "port"),
        ("https:///a.png", "host"),
        ("https://" + "a" * MAX_URL_CHARS, "at most 2048"),
        ("https://café.example/a.png", "non-ASCII"),
    ],
)
def test_a_media_url_an_attacker_crafts_is_refused_with_the_reason(url: str, says: str) -> None:
    field, message = _problem_on({"type": "image", "mediaUrl": url})
    assert field == "data.message.mediaUrl"
    assert says in message


def test_a_url_button_with_a_nul_is_refused_on_the_button() -> None:
    button = {"kind": "url", "displayText": "Go", "url": "https://shop.example/\x00admin"}
    message = {"type": "buttons", "title": "T", "description": "D", "buttons": [button]}
    field, reason = _problem_on(message)
    assert field == "data.message.buttons[0].url"
    assert "U+0000" in reason


@pytest.mark.parametrize(
    "url",
    [
        GOOD,
        "HTTP://CDN.EXAMPLE.COM/A.PNG",
        "http://127.0.0.1:8080/a?x=1&y=%20#frag",
        "https://[2001:db8::1]/a.png",
        "https://xn--caf-dma.example/menu%C3%A9.pdf",
        "https://cdn.example.com",
    ],
)
def test_urls_a_user_would_write_are_taken_unchanged(url: str) -> None:
    command = parse_command(_send({"type": "image", "mediaUrl": url}), max_bytes=65536)
    assert command.data.message.media_url == url  # type: ignore[union-attr]
    assert url_problem(url) is None


@given(st.text(max_size=60))
def test_the_published_pattern_and_the_check_agree_on_any_text(tail: str) -> None:
    for url in (tail, "https://" + tail, "http://a.io/" + tail):
        in_schema = re.search(HTTP_URL_PATTERN, url) is not None and "\n" not in url
        assert in_schema == (url_problem(url) is None), url
