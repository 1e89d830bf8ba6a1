"""`mount.fuse.xnatfs`: argv parsing, messages, stale mounts, install."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from xnatfs.app import fstab as mounthelper
from xnatfs.app.fstab import (
    HelperArgs,
    MountEntry,
    build_command,
    clear_stale_mount,
    install_helper,
    parse_argv,
    parse_mountinfo,
)
from xnatfs.app.mountopts import Translation
from xnatfs.errors import ConfigError

# --- argv ----------------------------------------------------------------------------------------


def test_argv_as_mount_passes_it() -> None:
    args = parse_argv(
        ["https://xnat.example.org", "/mnt/xnat", "-s", "-n", "-v", "-o", "ro,allow_other"]
    )
    assert args == HelperArgs(
        source="https://xnat.example.org",
        mountpoint="/mnt/xnat",
        options="ro,allow_other",
        sloppy=True,
        verbose=True,
        fake=False,
    )


def test_argv_joins_several_o_and_accepts_attached_form() -> None:
    args = parse_argv(["-o", "ro", "https://x.org", "-ocache_size=1G", "/m", "-f"])
    assert (args.source, args.mountpoint, args.options, args.fake) == (
        "https://x.org",
        "/m",
        "ro,cache_size=1G",
        True,
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["https://x.org"], "expected URL and MOUNTPOINT"),
        (["https://x.org", "/m", "/extra"], "expected URL and MOUNTPOINT"),
        (["https://x.org", "/m", "-o"], "-o needs a value"),
        (["https://x.org", "/m", "--bogus"], "unknown argument '--bogus'"),
        (["https://x.org", "/m", "-t", "fuse.sshfs"], "not fuse.sshfs"),
    ],
)
def test_bad_argv(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_argv(argv)
    assert message in str(err.value)


def test_build_command_runs_this_interpreter() -> None:
    args = HelperArgs(source="https://xnat.example.org/data/", mountpoint="/mnt/xnat")
    command = build_command(args, Translation(args=["--allow-other"]))
    assert command == [
        sys.executable,
        "-m",
        "xnatfs",
        "mount",
        "https://xnat.example.org",
        "/mnt/xnat",
        "--allow-other",
    ]


def test_build_command_refuses_a_non_url_source() -> None:
    with pytest.raises(ConfigError, match="http"):
        build_command(HelperArgs(source="xnat", mountpoint="/m"), Translation())
    with pytest.raises(ConfigError, match="credentials"):
        build_command(HelperArgs(source="https://u:pw@x.org", mountpoint="/m"), Translation())


# --- main ----------------------------------------------------------------------------------------


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = mounthelper.main(argv)
    return code, capsys.readouterr().err


def test_main_fake_mode_prints_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_main(
        ["https://xnat.example.org", "/mnt/xnat", "-f", "-o", "ro,_netdev,cache_size=1G"], capsys
    )
    assert code == 0
    assert "xnatfs mount https://xnat.example.org /mnt/xnat --cache-size=1G" in err


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("rw", "read-only"),
        ("ro,foreground", "foreground"),
        ("ro,config=relative.toml", "absolute path"),
        ("ro,nonsense", "unknown mount option 'nonsense'"),
    ],
)
def test_main_errors_are_one_line_and_exit_1(
    options: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_main(["https://xnat.example.org", "/mnt/xnat", "-o", options], capsys)
    assert code == 1
    assert err.startswith("mount.fuse.xnatfs: ")
    assert message in err
    assert err.count("\n") == 1


def test_main_sloppy_warns_about_skipped(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_main(["https://x.org", "/m", "-s", "-f", "-o", "ro,nonsense"], capsys)
    assert code == 0
    assert "ignoring unknown option 'nonsense'" in err


def test_main_execs_xnatfs_mount(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[list[str]] = []

    def fake_exec(command: list[str]) -> None:
        calls.append(command)
        raise SystemExit(0)

    monkeypatch.setattr(mounthelper, "_exec", fake_exec)
    with pytest.raises(SystemExit):
        mounthelper.main(
            [
                "https://xnat.example.org",
                str(tmp_path),
                "-o",
                "ro,allow_other,config=/etc/x.toml",
            ]
        )
    assert calls == [
        [
            sys.executable,
            "-m",
            "xnatfs",
            "mount",
            "https://xnat.example.org",
            str(tmp_path),
            "--allow-other",
            "--config=/etc/x.toml",
        ]
    ]


def test_console_script_runs(tmp_path: Path) -> None:
    """The installed entry point (what /sbin/mount.fuse.xnatfs links to) starts and refuses rw."""
    script = Path(sys.executable).parent / "mount.fuse.xnatfs"
    if not script.exists():
        pytest.skip("package not installed with its console scripts")
    proc = subprocess.run(
        [str(script), "https://xnat.example.org", str(tmp_path), "-o", "rw"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "read-only" in proc.stderr


# --- stale mounts ---------------------------------------------------------------------------------

MOUNTINFO = (
    "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "98 22 0:50 / /mnt/x\\040y rw,nosuid,nodev,relatime shared:60 - fuse.xnatfs "
    "xnatfs:xnat.example.org ro,user_id=0,group_id=0\n"
    "99 22 0:51 / /mnt/other rw - fuse.sshfs host:/ rw\n"
)


def test_parse_mountinfo_unescapes() -> None:
    entries = parse_mountinfo(MOUNTINFO)
    assert entries[1] == MountEntry("/mnt/x y", "fuse.xnatfs", "xnatfs:xnat.example.org")
    assert [e.fstype for e in entries] == ["ext4", "fuse.xnatfs", "fuse.sshfs"]


def test_clear_stale_mount_leaves_unmounted_and_live_paths_alone(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    live = tmp_path / "live"
    live.mkdir()
    info.write_text(f"1 0 0:1 / {live} rw - fuse.xnatfs xnatfs:x ro\n")
    # Listed as an xnatfs mount, but it answers stat: alive, so it is not touched.
    assert clear_stale_mount(live, mountinfo=info) is False
    assert clear_stale_mount(tmp_path / "absent", mountinfo=info) is False
    assert clear_stale_mount(live, mountinfo=tmp_path / "no-such-file") is False


@pytest.mark.fuse
@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="needs /dev/fuse")
def test_clear_stale_mount_detaches_a_dead_mount(tmp_path: Path) -> None:
    """A FUSE process killed with SIGKILL leaves ENOTCONN behind; the helper clears it."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = (
        "import os, sys, pyfuse3, trio\n"
        "class Ops(pyfuse3.Operations):\n"
        "    pass\n"
        "opts = set(pyfuse3.default_options) | {'fsname=xnatfs:test', 'subtype=xnatfs', 'ro'}\n"
        "pyfuse3.init(Ops(), sys.argv[1], opts)\n"
        "print('up', flush=True)\n"
        "trio.run(pyfuse3.main)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(mnt)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "up"
        proc.kill()
        proc.wait(timeout=30)
        with pytest.raises(OSError) as dead:
            os.stat(mnt)
        assert dead.value.errno in (errno.ENOTCONN, errno.ECONNABORTED)
        assert clear_stale_mount(mnt) is True
        assert os.stat(mnt).st_ino != 0
        assert not any(e.mountpoint == str(mnt) for e in parse_mountinfo(_mountinfo()))
        assert clear_stale_mount(mnt) is False
    finally:
        proc.kill()
        proc.wait(timeout=30)
        subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True, check=False)


def _mountinfo() -> str:
    return Path("/proc/self/mountinfo").read_text()


# --- install -------------------------------------------------------------------------------------


def test_install_helper_links_the_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "mount.fuse.xnatfs"
    if not script.exists():
        pytest.skip("package not installed with its console scripts")
    link = install_helper(tmp_path)
    assert link == tmp_path / "mount.fuse.xnatfs"
    assert link.is_symlink()
    assert Path(os.readlink(link)) == script.absolute()
    # Again: replaces the symlink, leaves no temporary behind.
    assert install_helper(tmp_path) == link
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mount.fuse.xnatfs"]


def test_install_helper_replaces_a_stale_symlink_not_a_file(tmp_path: Path) -> None:
    if not (Path(sys.executable).parent / "mount.fuse.xnatfs").exists():
        pytest.skip("package not installed with its console scripts")
    link = tmp_path / "mount.fuse.xnatfs"
    link.symlink_to("/nonexistent/old/mount.fuse.xnatfs")
    install_helper(tmp_path)
    assert link.resolve().exists()
    link.unlink()
    link.write_text("#!/bin/sh\n")
    with pytest.raises(ConfigError, match="not a symlink"):
        install_helper(tmp_path)
    assert link.read_text() == "#!/bin/sh\n"
