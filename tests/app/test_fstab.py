"""`mount.fuse.xnatfs`: option translation, argv parsing, messages, stale mounts, install."""

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
    Translation,
    build_command,
    clear_stale_mount,
    install_helper,
    parse_argv,
    parse_mountinfo,
    split_options,
    translate_options,
)
from xnatfs.config import OPTIONS
from xnatfs.errors import ConfigError

# --- translate_options -------------------------------------------------------------------------


def test_values_flags_and_config() -> None:
    t = translate_options("cache_size=10G,allow_other,config=/etc/xnatfs/site.toml,uid=1000")
    assert t.args == [
        "--cache-size=10G",
        "--allow-other",
        "--config=/etc/xnatfs/site.toml",
        "--uid=1000",
    ]
    assert t.skipped == []


def test_dashes_and_underscores_are_the_same() -> None:
    assert translate_options("metadata-ttl=30,max_connections=2").args == [
        "--metadata-ttl=30",
        "--max-connections=2",
    ]


def test_flag_values() -> None:
    assert translate_options("allow_other=yes,debug=1").args == ["--allow-other", "--debug"]
    assert translate_options("allow_other=no,debug=false").args == []
    with pytest.raises(ConfigError, match="allow_other"):
        translate_options("allow_other=perhaps")


def test_generic_mount_options_are_dropped() -> None:
    # What mount(8) actually passes for an fstab line with user, _netdev and nofail.
    text = "ro,noexec,nosuid,nodev,cache_size=10G,_netdev,nofail,user"
    assert translate_options(text).args == ["--cache-size=10G"]
    dropped = (
        "defaults,auto,noauto,users,nouser,exec,dev,suid,noatime,relatime,async,"
        "x-systemd.automount,x-systemd.idle-timeout=30min,x-systemd.requires=a.service,"
        "x-mount.mkdir,X-foo=bar,comment=systemd.automount"
    )
    assert translate_options(dropped).args == []


def test_rw_is_refused_with_a_hint_about_ro() -> None:
    with pytest.raises(ConfigError) as err:
        translate_options("rw,cache_size=1G")
    assert "read-only" in str(err.value)
    assert "'ro'" in str(err.value)


def test_unknown_option_is_refused_by_name() -> None:
    with pytest.raises(ConfigError) as err:
        translate_options("ro,cache_sise=1G")
    assert "cache_sise" in str(err.value)
    assert "cache_size" in str(err.value)  # the list of known options helps spot the typo


def test_sloppy_skips_unknown_options() -> None:
    t = translate_options("ro,kernel_cache,cache_size=1G", sloppy=True)
    assert t == Translation(args=["--cache-size=1G"], skipped=["kernel_cache"])


@pytest.mark.parametrize("key", ["password", "PASSWORD", "token", "pass"])
def test_passwords_are_refused_without_echoing_them(key: str) -> None:
    with pytest.raises(ConfigError) as err:
        translate_options(f"ro,{key}=hunter22")
    assert "hunter22" not in str(err.value)
    assert "password_file" in str(err.value)


def test_missing_and_bad_values_are_refused() -> None:
    with pytest.raises(ConfigError, match="cache_size.*needs a value"):
        translate_options("cache_size")
    with pytest.raises(ConfigError, match="cache_size"):
        translate_options("cache_size=")
    with pytest.raises(ConfigError, match="cache_size.*not a size"):
        translate_options("cache_size=lots")
    with pytest.raises(ConfigError, match="prefetch"):
        translate_options("prefetch=always")
    with pytest.raises(ConfigError, match="max_connections"):
        translate_options("max_connections=0")


def test_absolute_paths_when_asked() -> None:
    assert translate_options("cache_dir=cache").args == ["--cache-dir=cache"]
    for option in ("cache_dir=cache", "config=site.toml", "password_file=pw", "netrc=~/.netrc"):
        with pytest.raises(ConfigError, match="absolute path"):
            translate_options(option, absolute_paths=True)
    assert translate_options("netrc=/etc/xnatfs/netrc", absolute_paths=True).args == [
        "--netrc=/etc/xnatfs/netrc"
    ]


def test_every_option_translates() -> None:
    samples = {
        "foreground": "foreground",
        "cache_dir": "cache_dir=/c",
        "cache_size": "cache_size=5M",
        "metadata_ttl": "metadata_ttl=1.5",
        "max_connections": "max_connections=3",
        "user": "user=alice",  # an XNAT user name, not mount(8)'s bare `user` flag
        "password_file": "password_file=/p",
        "netrc": "netrc=/n",
        "allow_other": "allow_other",
        "uid": "uid=1",
        "gid": "gid=2",
        "debug": "debug",
        "prefetch": "prefetch=off",
        "connect_timeout": "connect_timeout=3",
        "read_timeout": "read_timeout=4",
        "retries": "retries=0",
    }
    assert set(samples) == {o.name for o in OPTIONS}, "a new option needs a sample here"
    args = translate_options(",".join(samples.values())).args
    assert len(args) == len(samples)
    assert "--user=alice" in args
    assert "--foreground" in args


def test_quoted_values_may_hold_commas() -> None:
    assert split_options('ro,config="/etc/x,y.toml",allow_other') == [
        "ro",
        "config=/etc/x,y.toml",
        "allow_other",
    ]
    assert translate_options('config="/etc/x,y.toml"').args == ["--config=/etc/x,y.toml"]
    with pytest.raises(ConfigError, match="quote"):
        split_options('config="/etc/x')
    assert split_options(",,ro,,") == ["ro"]


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
