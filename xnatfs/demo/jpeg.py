"""A small baseline JPEG encoder (grayscale, 8x8 DCT, Huffman) for the demo snapshots.

Baseline sequential JFIF: SOI, APP0, DQT, SOF0, DHT (DC + AC), SOS, entropy-coded data, EOI.
The Huffman tables are valid but not the standard ones: every DC category gets a 4-bit code and
every AC (run, size) symbol an 8-bit code. That costs a little compression and keeps the encoder
free of the 162-entry standard tables; any conforming decoder reads it.
"""

from __future__ import annotations

import math
import struct

# ITU T.81 Annex K luminance quantisation table, in natural (row-major) order.
_QUANT = (
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip


def _zigzag() -> list[int]:
    order: list[int] = []
    for s in range(15):
        cells = [(i, s - i) for i in range(8) if 0 <= s - i < 8]
        if s % 2 == 0:
            cells.reverse()  # even diagonals run bottom-left -> top-right
        order.extend(r * 8 + c for r, c in cells)
    return order


_ZIGZAG = _zigzag()
_COS = [
    [
        (math.sqrt(0.5) if u == 0 else 1.0) * math.cos((2 * x + 1) * u * math.pi / 16) / 2
        for x in range(8)
    ]
    for u in range(8)
]
_DC_SYMBOLS = list(range(12))
_AC_SYMBOLS = [0x00, 0xF0] + [(run << 4) | size for run in range(16) for size in range(1, 11)]


def _codes(symbols: list[int], length: int) -> dict[int, tuple[int, int]]:
    """Canonical codes when every symbol has the same code length."""
    return {sym: (i, length) for i, sym in enumerate(symbols)}


_DC_CODES = _codes(_DC_SYMBOLS, 4)
_AC_CODES = _codes(_AC_SYMBOLS, 8)


class _BitWriter:
    def __init__(self) -> None:
        self.out = bytearray()
        self.acc = 0
        self.nbits = 0

    def write(self, value: int, nbits: int) -> None:
        self.acc = (self.acc << nbits) | (value & ((1 << nbits) - 1))
        self.nbits += nbits
        while self.nbits >= 8:
            self.nbits -= 8
            byte = (self.acc >> self.nbits) & 0xFF
            self.out.append(byte)
            if byte == 0xFF:
                self.out.append(0)  # byte stuffing
        self.acc &= (1 << self.nbits) - 1

    def flush(self) -> bytes:
        if self.nbits:
            self.write((1 << (8 - self.nbits)) - 1, 8 - self.nbits)  # pad with 1-bits
        return bytes(self.out)


def _category(v: int) -> int:
    return abs(v).bit_length()


def _bits(v: int, size: int) -> int:
    return v if v >= 0 else v + (1 << size) - 1


def _fdct(block: list[float]) -> list[float]:
    tmp = [0.0] * 64
    for y in range(8):
        row = block[y * 8 : y * 8 + 8]
        for u in range(8):
            cu = _COS[u]
            tmp[y * 8 + u] = sum(cu[x] * row[x] for x in range(8))
    out = [0.0] * 64
    for u in range(8):
        col = [tmp[y * 8 + u] for y in range(8)]
        for v in range(8):
            cv = _COS[v]
            out[v * 8 + u] = sum(cv[y] * col[y] for y in range(8))
    return out


def _dht(table_class: int, table_id: int, symbols: list[int], length: int) -> bytes:
    counts = [0] * 16
    counts[length - 1] = len(symbols)
    payload = bytes([(table_class << 4) | table_id, *counts, *symbols])
    return b"\xff\xc4" + struct.pack(">H", len(payload) + 2) + payload


def encode_gray(pixels: list[list[int]]) -> bytes:
    """Encode a grayscale image given as rows of 0..255 values (all rows the same length)."""
    height, width = len(pixels), len(pixels[0])
    parts = [b"\xff\xd8"]
    app0 = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    parts.append(b"\xff\xe0" + struct.pack(">H", len(app0) + 2) + app0)
    dqt = bytes([0]) + bytes(_QUANT[i] for i in _ZIGZAG)
    parts.append(b"\xff\xdb" + struct.pack(">H", len(dqt) + 2) + dqt)
    sof = struct.pack(">BHHB", 8, height, width, 1) + bytes([1, 0x11, 0])
    parts.append(b"\xff\xc0" + struct.pack(">H", len(sof) + 2) + sof)
    parts.append(_dht(0, 0, _DC_SYMBOLS, 4))
    parts.append(_dht(1, 0, _AC_SYMBOLS, 8))
    sos = bytes([1, 1, 0x00, 0, 63, 0])
    parts.append(b"\xff\xda" + struct.pack(">H", len(sos) + 2) + sos)

    bw = _BitWriter()
    prev_dc = 0
    for by in range(0, height, 8):
        for bx in range(0, width, 8):
            block = [
                float(pixels[min(by + y, height - 1)][min(bx + x, width - 1)] - 128)
                for y in range(8)
                for x in range(8)
            ]
            coeffs = _fdct(block)
            q = [round(coeffs[i] / _QUANT[i]) for i in _ZIGZAG]
            diff = q[0] - prev_dc
            prev_dc = q[0]
            size = _category(diff)
            code, length = _DC_CODES[size]
            bw.write(code, length)
            if size:
                bw.write(_bits(diff, size), size)
            run = 0
            last_nonzero = max((i for i in range(1, 64) if q[i]), default=0)
            for i in range(1, last_nonzero + 1):
                if q[i] == 0:
                    run += 1
                    continue
                while run > 15:
                    bw.write(*_AC_CODES[0xF0])
                    run -= 16
                size = min(_category(q[i]), 10)
                code, length = _AC_CODES[(run << 4) | size]
                bw.write(code, length)
                bw.write(_bits(q[i], size), size)
                run = 0
            if last_nonzero < 63:
                bw.write(*_AC_CODES[0x00])
    parts.append(bw.flush())
    parts.append(b"\xff\xd9")
    return b"".join(parts)
