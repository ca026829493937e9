"""The minimal responder's HTTP parsing and its recorded answers."""

from __future__ import annotations

import json

from benchmarks.responder import Answer, content_length, parse_requests

POST = (
    b"POST /api/v1/messages/schedule?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\n"
    b'Content-Type: application/json\r\n\r\n{"a":1}'
)
GET = b"GET /api/v1/instances HTTP/1.1\r\nHost: h\r\n\r\n"


def test_complete_requests_are_taken_in_order_and_removed() -> None:
    buffer = bytearray(POST + GET)
    assert list(parse_requests(buffer)) == [
        (b"POST", b"/api/v1/messages/schedule"),
        (b"GET", b"/api/v1/instances"),
    ]
    assert buffer == b""


def test_a_request_whose_body_is_still_arriving_waits_for_it() -> None:
    buffer = bytearray(POST[:-3])
    assert list(parse_requests(buffer)) == []
    buffer += POST[-3:]
    assert list(parse_requests(buffer)) == [(b"POST", b"/api/v1/messages/schedule")]


def test_a_request_split_inside_its_headers_waits_for_them() -> None:
    buffer = bytearray(GET[:10])
    assert list(parse_requests(buffer)) == []
    assert buffer == GET[:10]


def test_content_length_is_read_whatever_its_case() -> None:
    assert content_length(b"POST / HTTP/1.1\r\ncontent-length:  12") == 12
    assert content_length(b"GET / HTTP/1.1\r\nHost: h") == 0


def test_an_answer_carries_a_fresh_id_and_its_own_length() -> None:
    body = json.dumps({"data": {"id": "old-id", "echo": "old-id", "status": "queued"}}).encode()
    answer = Answer.recorded(
        201,
        "Created",
        [("Content-Type", "application/json"), ("Content-Length", "99"), ("Date", "now")],
        body,
        "old-id",
    )
    raw = answer.render(b"new-id-longer")
    head, _, sent = raw.partition(b"\r\n\r\n")
    assert head.split(b"\r\n") == [
        b"HTTP/1.1 201 Created",
        b"Content-Type: application/json",
        f"Content-Length: {len(sent)}".encode(),
    ]
    assert json.loads(sent) == {
        "data": {"id": "new-id-longer", "echo": "new-id-longer", "status": "queued"}
    }
