"""The generated contents are real files: DICOM (pydicom, dcm2niix), JPEG, Analyze 7.5."""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import shutil
import struct
import subprocess
from pathlib import Path

import pydicom
import pytest

from xnatfs.demo import build_demo_site, content
from xnatfs.demo.site import Site


def _series(site: Site, experiment_label: str, scan_id: str) -> list[bytes]:
    exp = next(e for e in site.experiments() if e.label == experiment_label)
    dicom = next(r for r in exp.scans[scan_id].resources if r.label == "DICOM")
    return [
        dicom.files[name].data.read_all()
        for name in sorted(dicom.files, key=lambda n: int(n.split(".")[0]))
    ]


def test_dicom_slices_are_valid_mr_part10() -> None:
    site = build_demo_site()
    slices = [pydicom.dcmread(io.BytesIO(b)) for b in _series(site, "sub-01_MR1", "3")]
    assert len(slices) == 160
    first = slices[0]
    assert first.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert first.file_meta.MediaStorageSOPClassUID == "1.2.840.10008.5.1.4.1.1.4"
    assert first.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4" and first.Modality == "MR"
    assert (first.Rows, first.Columns, first.BitsAllocated) == (192, 192, 16)
    assert len(first.PixelData) == 192 * 192 * 2
    assert [float(v) for v in first.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    assert len({s.SeriesInstanceUID for s in slices}) == 1
    assert len({s.SOPInstanceUID for s in slices}) == 160
    assert [int(s.InstanceNumber) for s in slices] == list(range(1, 161))
    z = [float(s.ImagePositionPatient[2]) for s in slices]
    steps = {round(b - a, 3) for a, b in zip(z, z[1:], strict=False)}
    assert steps == {round(float(first.SliceThickness), 3)}
    assert first.PatientID == "SUB01" and first.SeriesDescription == "t2_flair_tra"


def test_dicom_pixels_show_a_phantom() -> None:
    middle = pydicom.dcmread(io.BytesIO(_series(build_demo_site(), "MR1", "1")[0]))
    values = struct.unpack(f"<{middle.Rows * middle.Columns}H", middle.PixelData)
    corner, centre = values[0], values[(middle.Rows // 2) * middle.Columns + middle.Columns // 2]
    assert corner == 0 and centre > 0 and max(values) > centre  # background, tissue, skull


def test_dicom_pixel_array_with_numpy() -> None:
    pytest.importorskip("numpy")
    ds = pydicom.dcmread(io.BytesIO(_series(build_demo_site(), "MR1", "2")[1]))
    assert ds.pixel_array.shape == (64, 64)


@pytest.mark.skipif(shutil.which("dcm2niix") is None, reason="dcm2niix not installed")
def test_dcm2niix_converts_a_series(tmp_path: Path) -> None:
    src = tmp_path / "dicom"
    src.mkdir()
    for i, data in enumerate(_series(build_demo_site(), "sub-01_MR1", "3")):
        (src / f"{i + 1}.dcm").write_bytes(data)
    out = tmp_path / "nifti"
    out.mkdir()
    proc = subprocess.run(
        ["dcm2niix", "-z", "n", "-f", "vol", "-o", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    nii = out / "vol.nii"
    header = nii.read_bytes()[:352]
    assert struct.unpack("<i", header[:4])[0] == 348
    dims = struct.unpack("<8h", header[40:56])
    assert dims[0] == 3 and dims[1:4] == (192, 192, 160)
    assert nii.stat().st_size == 352 + 192 * 192 * 160 * 2


def _turbojpeg() -> ctypes.CDLL:
    name = ctypes.util.find_library("turbojpeg")
    if name is None:
        pytest.skip("libturbojpeg not installed")
    return ctypes.CDLL(name)


def test_snapshot_is_a_decodable_jpeg() -> None:
    site = build_demo_site()
    exp = site.experiment_by_id("XNAT_E00001")
    assert exp is not None
    snaps = next(r for r in exp.scans["1"].resources if r.label == "SNAPSHOTS")
    data = snaps.files["snap.jpg"].data.read_all()
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
    lib = _turbojpeg()
    lib.tjInitDecompress.restype = ctypes.c_void_p
    handle = ctypes.c_void_p(lib.tjInitDecompress())
    w, h, sub, cs = (ctypes.c_int() for _ in range(4))
    assert (
        lib.tjDecompressHeader3(
            handle,
            data,
            ctypes.c_ulong(len(data)),
            ctypes.byref(w),
            ctypes.byref(h),
            ctypes.byref(sub),
            ctypes.byref(cs),
        )
        == 0
    )
    assert (w.value, h.value) == (128, 128)
    buf = ctypes.create_string_buffer(128 * 128)
    assert lib.tjDecompress2(handle, data, ctypes.c_ulong(len(data)), buf, 128, 0, 128, 6, 0) == 0
    lib.tjDestroy(handle)
    from xnatfs.demo import phantom

    expected = phantom.slice_u8(128, 128, 0.0, "T1")
    error = sum(abs(buf.raw[r * 128 + c] - expected[r][c]) for r in range(128) for c in range(128))
    assert error / (128 * 128) < 6  # lossy, but the same picture


def test_analyze_pair() -> None:
    hdr = content.analyze_hdr("T1")
    img = content.analyze_img("T1")
    assert len(hdr) == 348
    (sizeof_hdr,) = struct.unpack("<i", hdr[:4])
    (extents,) = struct.unpack("<i", hdr[32:36])
    assert (sizeof_hdr, extents, hdr[38:39]) == (348, 16384, b"r")
    dims = struct.unpack("<8h", hdr[40:56])
    datatype, bitpix = struct.unpack("<hh", hdr[70:74])
    pixdim = struct.unpack("<8f", hdr[76:108])
    assert dims[:4] == (3, 64, 64, 16) and (datatype, bitpix) == (4, 16)
    assert pixdim[1:4] == content.ANALYZE_VOXEL_MM
    assert len(img) == 64 * 64 * 16 * 2
    glmax, glmin = struct.unpack("<ii", hdr[140:148])
    values = struct.unpack(f"<{len(img) // 2}h", img)
    assert (glmax, glmin) == (max(values), min(values)) and glmax > 0


def test_pattern_file_reads_any_offset() -> None:
    f = content.PatternFile(5 << 20, seed=3, mtime=0.0)
    whole = f.read_all()
    assert len(whole) == 5 << 20
    for offset, length in ((0, 10), ((1 << 20) - 3, 10), (3 << 20, 1 << 20), ((5 << 20) - 1, 100)):
        assert f.read(offset, length) == whole[offset : offset + length]
    assert whole[: 1 << 20] != whole[1 << 20 : 2 << 20]  # blocks differ


def test_contents_are_deterministic_across_sites() -> None:
    a, b = build_demo_site(), build_demo_site()
    assert _series(a, "MR1", "4") == _series(b, "MR1", "4")
