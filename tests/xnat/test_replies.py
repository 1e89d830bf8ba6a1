"""Reading XNAT replies: ResultSet parsing, login pages, error statuses, body extents, dates.

Replies that need real HTTP come from the stub server (`tests/support/xnat_stub.py`), opened
with requests as the client opens them (streamed, nothing read yet).
"""

from __future__ import annotations

import gzip
import json
import time
import zlib
from collections.abc import Callable, Iterator

import pytest
import requests

from tests.support.hostile import gzip_bomb, gzip_bytes, gzipped
from tests.support.xnat_stub import LOGIN_PAGE, XnatStub
from tests.support.xnat_stub import Reply as StubReply
from xnatfs.errors import AccessDenied, NotFound, ProtocolError, Unavailable
from xnatfs.xnat.replies import (
    HTML_SNIFF,
    LOGIN_MARKER,
    Reply,
    TooLarge,
    Transient,
    body_extent,
    http_date,
    int_header,
    is_login_page,
    parse_result_set,
    status_error,
)

URL = "https://xnat.example/data/projects"
HTML = {"Content-Type": "text/html;charset=UTF-8"}
JSON = {"Content-Type": "application/json"}

OpenReply = Callable[[StubReply], Reply]


@pytest.fixture
def open_reply() -> Iterator[OpenReply]:
    """Serve one scripted answer and return it as an open, unread `Reply`."""
    with XnatStub() as stub:
        opened: list[Reply] = []

        def open_(answer: StubReply) -> Reply:
            path = f"/r{len(opened)}"
            stub.route(path, answer)
            resp = requests.get(stub.url + path, stream=True, timeout=10)
            reply = Reply(resp, path, time.monotonic())
            opened.append(reply)
            return reply

        yield open_
        for reply in opened:
            reply.close()


def result_set(rows: object, **extra: object) -> bytes:
    return json.dumps({"ResultSet": {"Result": rows, **extra}}).encode()


# --- parse_result_set ---------------------------------------------------------------------------


def test_result_set_rows_become_string_cells() -> None:
    body = result_set(
        [
            {"ID": "P1", "label": "", "note": None, "public": True, "hidden": False},
            {"ID": "P2", "count": 3, "size": 1.5, "big": 12345678901234},
        ],
        totalRecords="2",
    )
    assert parse_result_set(body, URL) == [
        {"ID": "P1", "label": "", "note": "", "public": "true", "hidden": "false"},
        {"ID": "P2", "count": "3", "size": "1.5", "big": "12345678901234"},
    ]


def test_an_empty_result_set_is_no_rows() -> None:
    assert parse_result_set(result_set([]), URL) == []


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"<html>not json</html>", "not JSON"),
        (b"\xff\xfe{", "not JSON"),
        (b"[]", "no ResultSet.Result list"),
        (b'{"items": []}', "no ResultSet.Result list"),
        (b'{"ResultSet": []}', "no ResultSet.Result list"),
        (b'{"ResultSet": {"totalRecords": "0"}}', "no ResultSet.Result list"),
        (b'{"ResultSet": {"Result": {"ID": "P1"}}}', "no ResultSet.Result list"),
    ],
)
def test_anything_but_a_result_set_is_a_protocol_error(body: bytes, why: str) -> None:
    with pytest.raises(ProtocolError, match=why) as info:
        parse_result_set(body, URL)
    assert URL in str(info.value)


def test_rows_that_are_not_objects_of_plain_values_are_left_out_with_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad: list[object] = ["P1", None, {"ID": {"nested": 1}}, {"tags": ["a", "b"]}, [1]]
    body = result_set([{"ID": "A"}, *bad, {"ID": "B"}])
    with caplog.at_level("WARNING"):
        assert parse_result_set(body, URL) == [{"ID": "A"}, {"ID": "B"}]
    (line,) = [r.getMessage() for r in caplog.records]
    assert "leaving out 5 row(s)" in line and URL in line


def test_only_the_columns_asked_for_are_kept() -> None:
    body = result_set([{"ID": "P1", "name": "x", "URI": "/u", "n": 3, "deep": {"a": 1}}])
    assert parse_result_set(body, URL, columns={"ID", "URI", "n"}) == [
        {"ID": "P1", "URI": "/u", "n": "3"}
    ]


def test_equal_short_cells_are_one_string() -> None:
    body = result_set([{"type": "T1 MPRAGE" + "", "ID": str(i)} for i in range(3)])
    rows = parse_result_set(body, URL)
    assert rows[0]["type"] is rows[1]["type"] is rows[2]["type"]


def test_more_rows_than_the_limit_are_refused_while_parsing() -> None:
    body = result_set([{"ID": str(i)} for i in range(11)])
    assert len(parse_result_set(body, URL, max_rows=11)) == 11
    with pytest.raises(TooLarge, match="more than 10 rows"):
        parse_result_set(body, URL, max_rows=10)


def test_a_bytearray_body_is_emptied_once_decoded() -> None:
    body = bytearray(result_set([{"ID": "P1"}]))
    assert parse_result_set(body, URL) == [{"ID": "P1"}]
    assert body == bytearray()


# --- is_login_page --------------------------------------------------------------------------------


def test_any_html_answer_to_a_listing_is_the_login_page(open_reply: OpenReply) -> None:
    reply = open_reply(StubReply(body=b"<html><body>whatever</body></html>", headers=HTML))
    assert is_login_page(reply, listing=True)
    # Without an HTML content type, the body's start still tells.
    for body in (b"<!DOCTYPE html><html></html>", b"\n  <HTML><body></body></HTML>"):
        assert is_login_page(open_reply(StubReply(body=body, headers=JSON)), listing=True), body


def test_a_listing_in_json_is_not_the_login_page(open_reply: OpenReply) -> None:
    body = result_set([{"ID": "P1"}])
    reply = open_reply(StubReply(body=body, headers=JSON))
    assert not is_login_page(reply, listing=True)
    # What was read to decide is handed on, not lost.
    assert reply.read_all() == body


def test_the_login_page_is_read_whole_for_the_caller_to_inspect(open_reply: OpenReply) -> None:
    page = LOGIN_PAGE + b"<!-- padding -->" * 200
    reply = open_reply(StubReply(body=page, headers=HTML))
    assert is_login_page(reply, listing=True)
    assert reply.head == page and len(page) < HTML_SNIFF


def test_a_refusal_is_not_a_login_page(open_reply: OpenReply) -> None:
    for status in (401, 403, 404):
        reply = open_reply(StubReply(status, LOGIN_PAGE, HTML))
        assert not is_login_page(reply, listing=True), status
        assert not is_login_page(reply, listing=False), status


def test_a_file_is_the_login_page_only_with_the_marker_and_without_disposition(
    open_reply: OpenReply,
) -> None:
    assert is_login_page(open_reply(StubReply(body=LOGIN_PAGE, headers=HTML)), listing=False)
    # An HTML file XNAT serves as a file (with Content-Disposition) is delivered as it is.
    attached = {**HTML, "Content-Disposition": 'attachment; filename="login.html"'}
    assert not is_login_page(open_reply(StubReply(body=LOGIN_PAGE, headers=attached)), False)
    # HTML without the marker, and the marker in a file that is not HTML, are plain files.
    report = b"<!DOCTYPE html><html><body>a report</body></html>"
    assert not is_login_page(open_reply(StubReply(body=report, headers=HTML)), listing=False)
    text = {"Content-Type": "text/plain"}
    reply = open_reply(StubReply(body=LOGIN_PAGE, headers=text))
    assert not is_login_page(reply, listing=False)
    assert reply.read_all() == LOGIN_PAGE


def test_the_marker_is_found_behind_a_long_head(open_reply: OpenReply) -> None:
    page = b"<!DOCTYPE html><html><head>" + b" " * 100_000 + LOGIN_MARKER + b"</head></html>"
    assert is_login_page(open_reply(StubReply(body=page, headers=HTML)), listing=False)


# --- status_error ---------------------------------------------------------------------------------


RESTLET_PAGE = (
    b"<html>\n<head>\n   <title>Status page</title>\n</head>\n<body>\n"
    b"<h3>Unable to find\n   file.</h3><p>You can get technical details</p></body></html>"
)


@pytest.mark.parametrize(
    ("status", "error", "text"),
    [
        (404, NotFound, "not found: " + URL + ": Unable to find file."),
        (410, NotFound, "not found: " + URL + ": Unable to find file."),
        (403, AccessDenied, "access denied: " + URL + ": Unable to find file."),
        (500, Unavailable, "GET " + URL + ": server error 500: Unable to find file."),
        (503, Unavailable, "GET " + URL + ": server error 503: Unable to find file."),
        (400, ProtocolError, "GET " + URL + ": unexpected HTTP 400: Unable to find file."),
        (409, ProtocolError, "GET " + URL + ": unexpected HTTP 409: Unable to find file."),
    ],
)
def test_status_error_maps_the_status_and_quotes_the_servers_h3(
    open_reply: OpenReply, status: int, error: type[Exception], text: str
) -> None:
    exc = status_error(open_reply(StubReply(status, RESTLET_PAGE, HTML)), URL)
    assert type(exc) is error
    assert str(exc) == text


def test_status_error_message_from_a_plain_body_or_none(open_reply: OpenReply) -> None:
    plain = status_error(open_reply(StubReply(404, b"  no such\n\tproject  ")), URL)
    assert str(plain) == f"not found: {URL}: no such project"
    long = status_error(open_reply(StubReply(500, b"x" * 1000)), URL)
    assert str(long) == f"GET {URL}: server error 500: " + "x" * 200
    html = b"<html><body><h1>HTTP Status 404</h1></body></html>"
    assert str(status_error(open_reply(StubReply(404, html, HTML)), URL)) == f"not found: {URL}"
    assert str(status_error(open_reply(StubReply(403, b"")), URL)) == f"access denied: {URL}"


# --- body_extent ----------------------------------------------------------------------------------


def test_body_extent_of_a_whole_body(open_reply: OpenReply) -> None:
    assert body_extent(open_reply(StubReply(body=b"x" * 100)), "/f") == (100, 0)
    # Chunked: the length is learned by reading to the end.
    assert body_extent(open_reply(StubReply(body=b"x" * 100, content_length=None)), "/f") == (
        None,
        0,
    )


def test_body_extent_of_a_partial_body_follows_content_range(open_reply: OpenReply) -> None:
    ranged = StubReply(206, b"y" * 10, {"Content-Range": "bytes 90-99/100"})
    assert body_extent(open_reply(ranged), "/f") == (100, 90)
    unknown_total = StubReply(206, b"y" * 10, {"Content-Range": "bytes 10-19/*"})
    assert body_extent(open_reply(unknown_total), "/f") == (None, 10)


@pytest.mark.parametrize("content_range", ["", "items 0-9/100", "bytes x-9/100", "bytes 0-9/lots"])
def test_a_malformed_content_range_is_a_protocol_error(
    open_reply: OpenReply, content_range: str
) -> None:
    headers = {"Content-Range": content_range} if content_range else {}
    with pytest.raises(ProtocolError, match="GET /f: malformed Content-Range"):
        body_extent(open_reply(StubReply(206, b"y" * 10, headers)), "/f")


def test_a_compressed_body_has_no_known_extent(open_reply: OpenReply) -> None:
    # Content-Length counts compressed bytes; the file's length is not known from it.
    packed = gzip.compress(b"z" * 1000)
    reply = open_reply(StubReply(body=packed, headers={"Content-Encoding": "gzip"}))
    assert body_extent(reply, "/f") == (None, 0)
    assert reply.read_all() == b"z" * 1000


def test_an_inflating_reply_never_hands_out_more_than_asked(open_reply: OpenReply) -> None:
    # 64 MiB of zeros in about 64 KiB: no read may inflate more than it asked for.
    packed = gzip_bytes([b"\0" * (1 << 20)] * 64)
    assert len(packed) < 100_000
    reply = open_reply(StubReply(body=packed, headers={"Content-Encoding": "gzip"}))
    total = 0
    while piece := reply.read_some(4096):
        assert len(piece) <= 4096
        total += len(piece)
    assert total == 64 << 20


def test_a_body_past_the_limit_is_refused_without_reading_on(open_reply: OpenReply) -> None:
    reply = open_reply(gzip_bomb(200 << 20))
    with pytest.raises(TooLarge, match="larger than 1048576 bytes"):
        reply.read_all(1 << 20)
    # Refused within a piece of the limit, not after inflating the 200 MiB.
    assert reply._bytes <= (1 << 20) + 256 * 1024
    exact = result_set([{"ID": "P1"}])
    assert open_reply(gzipped(exact)).read_all(len(exact)) == exact


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [
        ("gzip", lambda b: gzip.compress(b[:500]) + gzip.compress(b[500:])),  # two members
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),  # as the standard says: zlib-wrapped
        ("deflate", lambda b: zlib.compress(b, wbits=-15)),  # as some servers send it: raw
        ("gzip", lambda b: gzip.compress(b) + b"\r\n"),  # bytes after the member
    ],
)
def test_compressed_bodies_as_servers_send_them(
    open_reply: OpenReply, encoding: str, pack: Callable[[bytes], bytes]
) -> None:
    body = result_set([{"ID": f"P{i}"} for i in range(100)])
    reply = open_reply(StubReply(body=pack(body), headers={"Content-Encoding": encoding}))
    assert reply.read_all() == body


def test_bad_compressed_bodies(open_reply: OpenReply) -> None:
    packed = gzip.compress(b"x" * 100_000)
    corrupt = packed[:20] + bytes(b ^ 0xFF for b in packed[20:40]) + packed[40:]
    with pytest.raises(ProtocolError, match="corrupt compressed reply"):
        open_reply(StubReply(body=corrupt, headers={"Content-Encoding": "gzip"})).read_all()
    cut = StubReply(body=packed[: len(packed) // 2], headers={"Content-Encoding": "gzip"})
    with pytest.raises(Transient, match="closed before the reply was complete"):
        open_reply(cut).read_all()
    odd = StubReply(body=b"whatever", headers={"Content-Encoding": "br"})
    with pytest.raises(ProtocolError, match="unsupported Content-Encoding 'br'"):
        open_reply(odd).read_all()


# --- headers --------------------------------------------------------------------------------------


def test_int_header_accepts_only_non_negative_integers() -> None:
    assert int_header("12") == 12
    assert int_header(" 7 ") == 7
    assert int_header("0") == 0
    for bad in (None, "", "-1", "1.5", "12 bytes"):
        assert int_header(bad) is None, bad


def test_http_date() -> None:
    assert http_date("Wed, 21 Oct 2015 07:28:00 GMT") == 1445412480.0
    assert http_date("Wed, 21 Oct 2015 09:28:00 +0200") == 1445412480.0
    for bad in (None, "", "yesterday", "Wed, 99 Foo 2015 07:28:00 GMT"):
        assert http_date(bad) is None, bad
