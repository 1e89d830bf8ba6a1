"""`mount.fuse.xnatfs`: its command line, messages and exit statuses, and `install_helper`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from xnatfs.app import fstab as mounthelper
from xnatfs.app.fstab import HelperArgs, build_command, install_helper, parse_argv
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
    """The installed entry point (what /sbin/mount.fuse.xnatfs links to) starts, takes `rw` as
    mount(8) passes it (saying that the mount is read-only) and refuses what is wrong."""
    script = Path(sys.executable).parent / "mount.fuse.xnatfs"
    if not script.exists():
        pytest.skip("package not installed with its console scripts")
    proc = subprocess.run(
        [str(script), "https://xnat.example.org", str(tmp_path), "-f", "-o", "rw"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "read-only" in proc.stderr
    proc = subprocess.run(
        [str(script), "https://xnat.example.org", str(tmp_path), "-o", "rw,nonsense"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1 and "nonsense" in proc.stderr


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
