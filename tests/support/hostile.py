"""A small XNAT that misbehaves on purpose, for real mounts (standard library only).

`HostileXnat` is the scriptable `XnatStub` (its `route`, `route_prefix`, `seen`, Basic auth and
`JSESSIONID` sessions) with the few listings a mount needs to reach one resource: project `P`
without subjects, and the project resource `R` (ID 1). The mount's `P/resources/R/` is the files
listing a test scripts with `files()`, and each file's bytes are whatever `serve()` says, so a
test writes only the fault it is about. The reply builders below make the usual faults:
listings from rows or raw bytes, compressed replies that inflate far beyond their size,
redirects, bodies that trickle or never end.

    with HostileXnat() as xnat:
        xnat.files([xnat.row("a.dcm", b"..."), {"Name": "\\ud800", ...}])
        xnat.serve("a.dcm", b"...")
        with tmp_mounted(xnat.url, tmp_path, user=xnat.user, password=xnat.password) as m:
            os.listdir(m.path / xnat.RESOURCE)
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import ssl
import subprocess
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.support.xnat_stub import Part, Reply, StubAuth, XnatStub, json_reply
from xnatfs.xnat.paths import file_url_path

PROJECT = "P"
RESOURCE_ID = "1"
RESOURCE_LABEL = "R"


def files_listing(rid: str = RESOURCE_ID) -> str:
    """The request path of the files listing of the project resource `rid`."""
    return f"/data/projects/{PROJECT}/resources/{rid}/files"


Row = Mapping[str, Any]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def raw_listing(body: bytes, headers: Mapping[str, str] | None = None) -> Reply:
    """A listing reply whose body is exactly `body` (invalid UTF-8, odd escapes, anything)."""
    return Reply(body=body, headers={"Content-Type": "application/json", **(headers or {})})


def gzipped(body: bytes) -> Reply:
    """A listing reply sent with `Content-Encoding: gzip`."""
    return Reply(
        body=gzip_bytes([body]),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )


def gzip_bytes(pieces: Sequence[bytes] | Iterator[bytes]) -> bytes:
    """The gzip stream of the concatenated `pieces` (compressed piece by piece: a bomb of
    hundreds of megabytes never exists uncompressed here)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = [packer.compress(piece) for piece in pieces]
    out.append(packer.flush())
    return b"".join(out)


def gzip_bomb(inflated: int) -> Reply:
    """A valid JSON listing of no rows padded with spaces to `inflated` bytes, gzip-compressed
    (about a thousandth of that on the wire)."""
    head, tail = b'{"ResultSet": {"Result": [', b"]}}"
    pad = inflated - len(head) - len(tail)
    block = b" " * (1 << 20)

    def pieces() -> Iterator[bytes]:
        yield head
        left = pad
        while left > 0:
            yield block[: min(left, len(block))]
            left -= len(block)
        yield tail

    return Reply(
        body=gzip_bytes(pieces()),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )


def redirect(location: str, status: int = 307) -> Reply:
    """A redirect to `location` (absolute URL or path)."""
    return Reply(status, b"", {"Location": location, "Content-Type": "text/plain"})


def file_reply(data: bytes) -> Reply:
    """A file body as XNAT sends one (with `Content-Disposition`)."""
    return Reply(
        body=data,
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": "attachment",
        },
    )


def trickle(piece: bytes, interval: float, content_length: int | None = None) -> Reply:
    """A body that sends `piece` every `interval` seconds and never ends (`content_length`, if
    given, is declared and never reached)."""

    def pieces() -> Iterator[Part]:
        while True:
            yield piece
            yield interval

    return Reply(
        headers={"Content-Type": "application/octet-stream", "Content-Disposition": "attachment"},
        stream=pieces,
        content_length=content_length,
    )


def endless(piece: bytes = b"\0" * 65536, content_length: int | None = None) -> Reply:
    """A body that floods `piece` after `piece` as fast as the client takes them, for ever."""

    def pieces() -> Iterator[Part]:
        while True:
            yield piece

    return Reply(
        headers={"Content-Type": "application/octet-stream", "Content-Disposition": "attachment"},
        stream=pieces,
        content_length=content_length,
    )


class HostileXnat(XnatStub):
    """The stub with project `P` and its resource `R` (see the module docstring); more project
    resources with `add_resource`. Methods that name a file take the resource's ID (`rid`,
    default `R`'s).

    `user`/`password` are the only credentials it accepts (Basic, then its session cookie).
    """

    PROJECT = PROJECT
    # Where the scripted files listing appears below a mount point.
    RESOURCE = f"{PROJECT}/resources/{RESOURCE_LABEL}"

    def __init__(
        self,
        user: str = "alice",
        password: str = "hostile-pa55word",
        *,
        host: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(StubAuth({user: password}), host=host, tls=tls)
        self.user = user
        self.password = password
        self._resources: dict[str, str] = {}
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() - 86400))
        self.route(
            "/data/projects", json_reply([{"ID": PROJECT, "name": PROJECT, "insert_date": stamp}])
        )
        self.route("/data/subjects", json_reply([]))
        self.route(f"/data/projects/{PROJECT}/subjects", json_reply([]))
        self.add_resource(RESOURCE_ID, RESOURCE_LABEL)

    def add_resource(self, rid: str, label: str) -> str:
        """Add project resource `label` (ID `rid`), with no files yet; returns its path below a
        mount point."""
        self._resources[rid] = label
        rows = [{"xnat_abstractresource_id": r, "label": n} for r, n in self._resources.items()]
        self.route(f"/data/projects/{PROJECT}/resources", json_reply(rows))
        self.files([], rid)
        return f"{PROJECT}/resources/{label}"

    @staticmethod
    def uri(name: str, rid: str = RESOURCE_ID) -> str:
        """The listing URI of the file `name` of resource `rid`."""
        return f"{files_listing(rid)}/{name}"

    @staticmethod
    def row(
        name: str, data: bytes | None = None, rid: str = RESOURCE_ID, **cells: Any
    ) -> dict[str, Any]:
        """A files-listing row for `name`; with `data`, its Size and MD5 digest (cells given
        here win)."""
        out: dict[str, Any] = {
            "Name": name,
            "URI": f"{files_listing(rid)}/{name}",
            "collection": RESOURCE_LABEL,
            "cat_ID": rid,
        }
        if data is not None:
            out.update(Size=str(len(data)), digest=md5(data))
        out.update(cells)
        return out

    def files(self, answer: Sequence[Row] | Reply | bytes, rid: str = RESOURCE_ID) -> None:
        """The files listing of resource `rid`: rows, a raw body, or any reply."""
        if isinstance(answer, Reply):
            reply = answer
        elif isinstance(answer, bytes):
            reply = raw_listing(answer)
        else:
            reply = json_reply(list(answer))
        self.route(files_listing(rid), reply)

    def serve(self, name: str, answer: bytes | Reply, rid: str = RESOURCE_ID) -> None:
        """What a GET (or HEAD) of the file `name` of resource `rid` gets."""
        reply = file_reply(answer) if isinstance(answer, bytes) else answer
        self.route(file_url_path(self.uri(name, rid)), reply)

    def serve_all(self, files: Mapping[str, bytes], rid: str = RESOURCE_ID) -> list[dict[str, Any]]:
        """Serve every file of `files` and return their listing rows (not yet listed)."""
        for name, data in files.items():
            self.serve(name, data, rid)
        return [self.row(name, data, rid) for name, data in files.items()]


def listing_body(rows: Sequence[Row]) -> bytes:
    """A listing body as XNAT writes it."""
    result = {"Result": list(rows), "totalRecords": str(len(rows))}
    return json.dumps({"ResultSet": result}).encode()


def self_signed(directory: Path) -> tuple[ssl.SSLContext, Path] | None:
    """A server context with a fresh self-signed certificate for 127.0.0.1, and the certificate
    file for clients to trust (`REQUESTS_CA_BUNDLE`); None when `openssl` is not installed."""
    if shutil.which("openssl") is None:
        return None
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context, cert


def outward_address() -> str | None:
    """An address of this machine that is not loopback (to listen on as a "remote" server),
    or None. Sends nothing: connecting a UDP socket only picks the route."""
    for target in ("10.255.255.255", "192.0.2.1"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.connect((target, 9))
            except OSError:
                continue
            address: str = probe.getsockname()[0]
        if not address.startswith("127."):
            return address
    return None
