"""An in-memory stand-in for the blocking `XnatClient`, for tests of the core without HTTP.

The real `xnatfs.remote.AsyncXnat` runs it in worker threads exactly as it runs the client, so
request counts, shared downloads and verification can be asserted exactly.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import threading
import zipfile
from collections.abc import Callable, Iterator, Mapping

from xnatfs.errors import NotFound, Unavailable

E = "XNAT_E00001"
FILES = f"/data/experiments/{E}/scans/1/resources/11/files"
BIG = bytes(range(256)) * 4096  # 1 MiB


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


class FakeRemote:
    """A blocking stand-in for `XnatClient`: listings from a dict, file bodies and archives from
    memory. The real `AsyncXnat` runs it in worker threads, as it runs the real client."""

    def __init__(self) -> None:
        self.listings: dict[str, list[dict[str, str]]] = {
            "/data/projects": [{"ID": "TEST", "insert_date": "2024-01-01 00:00:00.0"}],
            "/data/projects/TEST/subjects": [
                {"ID": "XNAT_S00001", "label": "1", "insert_date": "2024-01-02 10:00:00.0"}
            ],
            "/data/subjects": [{"ID": "XNAT_S00001", "insert_date": "2024-01-02 10:00:00.0"}],
            "/data/projects/TEST/subjects/XNAT_S00001/experiments": [
                {"ID": E, "label": "MR1", "date": "2024-02-03"}
            ],
            f"/data/experiments/{E}/scans": [{"ID": "1", "type": "T1"}],
            f"/data/experiments/{E}/scans/1/resources": [
                {"xnat_abstractresource_id": "11", "label": "DICOM", "cat_id": "1"}
            ],
            FILES: [
                self.row("small.dcm", b"hello"),
                self.row("big.dcm", BIG),
                self.row("nosize.dcm", b"abc" * 1000, size=""),
            ],
        }
        self.bodies: dict[str, bytes] = {
            f"{FILES}/small.dcm": b"hello",
            f"{FILES}/big.dcm": BIG,
            f"{FILES}/nosize.dcm": b"abc" * 1000,
        }
        self.list_calls: list[str] = []
        self.get_calls: list[str] = []
        self.zip_calls: list[str] = []
        self.zip_gate = threading.Event()
        self.zip_gate.set()
        self.gate = threading.Event()
        self.gate.set()
        self.list_gate = threading.Event()  # listings wait for it (after being counted)
        self.list_gate.set()
        self.fail_next: Exception | None = None
        self.zip_fails = False  # archive requests are refused
        self.size_calls: list[str] = []
        self.lengths = True  # HEAD says how long a file is

    @staticmethod
    def row(name: str, body: bytes, size: str | None = None) -> dict[str, str]:
        return {
            "Name": name,
            "Size": str(len(body)) if size is None else size,
            "URI": f"{FILES}/{name}",
            "collection": "DICOM",
            "cat_ID": "11",
            "digest": md5(body),
        }

    def list(self, path: str, params: Mapping[str, str] | None = None) -> list[dict[str, str]]:
        self.list_calls.append(path)
        self.list_gate.wait(10)
        if path not in self.listings:
            raise NotFound(path)
        return self.listings[path]

    def size_of(self, path: str) -> int | None:
        self.size_calls.append(path)
        return len(self.bodies[path]) if self.lengths else None

    def download(
        self,
        path: str,
        write: Callable[[int, bytes], None],
        *,
        same: Callable[[int, bytes], bool],
        cancel: threading.Event,
        params: Mapping[str, str] | None = None,
    ) -> object:
        self.get_calls.append(path)
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        body = self.bodies[path]
        for offset in range(0, len(body), 64 * 1024):
            if cancel.is_set():  # as the real client checks before each chunk
                raise Unavailable(f"GET {path}: cancelled")
            write(offset, body[offset : offset + 64 * 1024])
            if offset == 0:
                # Hold the rest back until the test opens the gate.
                self.gate.wait(10)
        return None

    @contextlib.contextmanager
    def stream(
        self, path: str, params: Mapping[str, str] | None = None
    ) -> Iterator[Iterator[bytes]]:
        assert params == {"format": "zip"}
        self.zip_calls.append(path)
        if self.zip_fails:
            raise Unavailable(f"GET {path}: server error 500")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for row in self.listings[path]:
                rel = row["URI"].split("/files/", 1)[1]
                z.writestr(f"MR1/scans/1-T1/resources/DICOM/files/{rel}", self.bodies[row["URI"]])
        data = buf.getvalue()

        def chunks() -> Iterator[bytes]:
            for i in range(0, len(data), 1000):
                yield data[i : i + 1000]
                self.zip_gate.wait(10)  # the test decides how far the archive gets

        yield chunks()
