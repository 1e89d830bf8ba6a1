"""A minimal DICOM Part 10 writer for MR Image Storage, explicit VR little endian.

Only what the demo site needs: a fixed list of attributes with string/int/float values and one
16-bit monochrome frame. The header is built without the pixels, so a file's size is known
before its pixel data is generated (`MrSlice.header` + `pixel_data_length`).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
IMPLEMENTATION_CLASS_UID = "2.25.81723123946725309611528212467117530817"
IMPLEMENTATION_VERSION = "XNATFS_DEMO_1"

# VRs with a 2-byte reserved field and a 4-byte length in explicit VR encoding.
_LONG_VRS = frozenset({"OB", "OW", "OF", "SQ", "UT", "UN"})


def uid_for(*parts: object) -> str:
    """A stable, valid UID (2.25 + a 128-bit integer derived from `parts`)."""
    digest = hashlib.md5("/".join(str(p) for p in parts).encode()).digest()
    return "2.25." + str(int.from_bytes(digest, "big"))


def element(tag: int, vr: str, value: bytes) -> bytes:
    """Encode one data element; pads the value to even length as the standard requires."""
    if len(value) % 2:
        value += b"\0" if vr in ("UI", "OB") else b" "
    group, elem = tag >> 16, tag & 0xFFFF
    if vr in _LONG_VRS:
        return struct.pack("<HH2sHI", group, elem, vr.encode(), 0, len(value)) + value
    if len(value) > 0xFFFF:
        raise ValueError(f"value too long for VR {vr}")
    return struct.pack("<HH2sH", group, elem, vr.encode(), len(value)) + value


def _text(vr: str, value: str | float | int | tuple[float, ...]) -> bytes:
    if isinstance(value, tuple):
        return "\\".join(_fmt(v) for v in value).encode("ascii")
    return _fmt(value).encode("ascii") if vr in ("DS", "IS") else str(value).encode("ascii")


def _fmt(v: object) -> str:
    if isinstance(v, float):
        # DS values are at most 16 characters.
        text = f"{v:.6f}".rstrip("0").rstrip(".")
        return text if text not in ("", "-0") else "0"
    return str(v)


@dataclass(frozen=True)
class MrSlice:
    """Everything that varies between the slices of the demo series."""

    patient_name: str
    patient_id: str
    study_uid: str
    series_uid: str
    study_date: str  # YYYYMMDD
    study_description: str
    series_description: str
    series_number: int
    instance_number: int  # 1-based
    rows: int
    cols: int
    pixel_spacing: float
    slice_thickness: float
    z_mm: float
    weighting: str

    @property
    def sop_instance_uid(self) -> str:
        return uid_for(self.series_uid, self.instance_number)

    @property
    def pixel_data_length(self) -> int:
        return self.rows * self.cols * 2

    def meta(self) -> bytes:
        """Preamble, magic and the file meta group (0002)."""
        body = b"".join(
            (
                element(0x00020001, "OB", b"\x00\x01"),
                element(0x00020002, "UI", MR_IMAGE_STORAGE.encode()),
                element(0x00020003, "UI", self.sop_instance_uid.encode()),
                element(0x00020010, "UI", EXPLICIT_VR_LITTLE_ENDIAN.encode()),
                element(0x00020012, "UI", IMPLEMENTATION_CLASS_UID.encode()),
                element(0x00020013, "SH", IMPLEMENTATION_VERSION.encode()),
            )
        )
        group_length = element(0x00020000, "UL", struct.pack("<I", len(body)))
        return b"\0" * 128 + b"DICM" + group_length + body

    def dataset_header(self) -> bytes:
        """All attributes before Pixel Data, plus the Pixel Data element header."""
        fov_x = self.cols * self.pixel_spacing
        fov_y = self.rows * self.pixel_spacing
        position = (-fov_x / 2.0, -fov_y / 2.0, self.z_mm)
        t1 = not (self.weighting.upper().startswith("T2") or "FLAIR" in self.weighting.upper())
        tr, te = (500.0, 12.0) if t1 else (4000.0, 95.0)
        attrs: list[tuple[int, str, str | float | int | tuple[float, ...]]] = [
            (0x00080005, "CS", "ISO_IR 100"),
            (0x00080008, "CS", "ORIGINAL\\PRIMARY\\M\\ND"),
            (0x00080016, "UI", MR_IMAGE_STORAGE),
            (0x00080018, "UI", self.sop_instance_uid),
            (0x00080020, "DA", self.study_date),
            (0x00080021, "DA", self.study_date),
            (0x00080022, "DA", self.study_date),
            (0x00080023, "DA", self.study_date),
            (0x00080030, "TM", "093000"),
            (0x00080031, "TM", f"09{30 + self.series_number % 30:02d}00"),
            (0x00080032, "TM", f"09{30 + self.series_number % 30:02d}00"),
            (
                0x00080033,
                "TM",
                f"09{30 + self.series_number % 30:02d}{self.instance_number % 60:02d}",
            ),
            (0x00080050, "SH", "ACC" + self.study_uid[-8:]),
            (0x00080060, "CS", "MR"),
            (0x00080070, "LO", "XNATFS Demo Scanner Co"),
            (0x00080080, "LO", "Demo Imaging Centre"),
            (0x00080090, "PN", ""),
            (0x00081030, "LO", self.study_description),
            (0x0008103E, "LO", self.series_description),
            (0x00081090, "LO", "Phantom 3T"),
            (0x00100010, "PN", self.patient_name),
            (0x00100020, "LO", self.patient_id),
            (0x00100030, "DA", "19700101"),
            (0x00100040, "CS", "O"),
            (0x00180020, "CS", "SE"),
            (0x00180021, "CS", "NONE"),
            (0x00180022, "CS", ""),
            (0x00180023, "CS", "2D"),
            (0x00180050, "DS", self.slice_thickness),
            (0x00180080, "DS", tr),
            (0x00180081, "DS", te),
            (0x00180083, "DS", 1.0),
            (0x00180087, "DS", 3.0),
            (0x00180088, "DS", self.slice_thickness),
            (0x00180091, "IS", 1),
            (0x00181030, "LO", self.series_description),
            (0x00185100, "CS", "HFS"),
            (0x0020000D, "UI", self.study_uid),
            (0x0020000E, "UI", self.series_uid),
            (0x00200010, "SH", "1"),
            (0x00200011, "IS", self.series_number),
            (0x00200012, "IS", 1),
            (0x00200013, "IS", self.instance_number),
            (0x00200032, "DS", position),
            (0x00200037, "DS", (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)),
            (0x00200052, "UI", uid_for(self.study_uid, "frame")),
            (0x00201040, "LO", ""),
            (0x00201041, "DS", self.z_mm),
            (0x00280002, "US", 1),
            (0x00280004, "CS", "MONOCHROME2"),
            (0x00280010, "US", self.rows),
            (0x00280011, "US", self.cols),
            (0x00280030, "DS", (self.pixel_spacing, self.pixel_spacing)),
            (0x00280100, "US", 16),
            (0x00280101, "US", 16),
            (0x00280102, "US", 15),
            (0x00280103, "US", 0),
            (0x00281050, "DS", 800.0),
            (0x00281051, "DS", 1600.0),
        ]
        parts = []
        for tag, vr, value in attrs:
            if vr == "US":
                assert isinstance(value, int)
                parts.append(element(tag, vr, struct.pack("<H", value)))
            else:
                parts.append(element(tag, vr, _text(vr, value)))
        # Pixel Data header only: the value follows separately (its length is known).
        parts.append(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, self.pixel_data_length))
        return b"".join(parts)

    def header(self) -> bytes:
        return self.meta() + self.dataset_header()

    def encode(self, pixels: Callable[[], bytes]) -> bytes:
        """The whole file; `pixels()` must return `pixel_data_length` bytes."""
        data = pixels()
        if len(data) != self.pixel_data_length:
            raise ValueError("pixel data length does not match rows*cols*2")
        return self.header() + data
