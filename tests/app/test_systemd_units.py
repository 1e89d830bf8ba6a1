"""The shipped systemd units and examples: `systemd-analyze verify` clean, and as documented.

`systemd-analyze verify` exits 0 on some invalid values and only warns on stderr, so any output
on stderr counts as a failure here (the control test shows the check can fail).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from xnatfs.app.configfile import load_config_file
from xnatfs.app.mountopts import translate_options
from xnatfs.config import build_config

SYSTEMD_DIR = Path(__file__).resolve().parents[2] / "systemd"
SYSTEM_UNIT = SYSTEMD_DIR / "xnatfs@.service"
USER_UNIT = SYSTEMD_DIR / "user" / "xnatfs@.service"
MOUNT_UNIT = SYSTEMD_DIR / "mnt-xnat.mount"
AUTOMOUNT_UNIT = SYSTEMD_DIR / "mnt-xnat.automount"

ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")

# Options that give a service its own mount namespace or hide /dev/fuse: the FUSE mount would
# then be invisible to the host.
NAMESPACE_OPTIONS = (
    "PrivateMounts",
    "ProtectSystem",
    "ProtectHome",
    "PrivateDevices",
    "PrivateTmp",
    "TemporaryFileSystem",
    "DynamicUser",
)


def settings(unit: Path) -> dict[str, list[str]]:
    """`Key=value` lines of a unit file, by key (comments and section headers skipped)."""
    found: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        found.setdefault(key.strip(), []).append(value.strip())
    return found


def with_executable(unit: Path, dest: Path) -> Path:
    """Copy `unit` into `dest`, pointing ExecStart= at an executable that exists here."""
    dest.mkdir(parents=True, exist_ok=True)
    text = unit.read_text()
    true = shutil.which("true") or "/bin/true"
    text = re.sub(r"^ExecStart=\S+", f"ExecStart={true}", text, flags=re.M)
    target = dest / unit.name
    target.write_text(text)
    return target


def verify(unit: Path, *, user: bool, runtime_dir: Path) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    env = dict(os.environ)
    if user:
        runtime_dir.mkdir(parents=True, exist_ok=True)
        env["XDG_RUNTIME_DIR"] = str(runtime_dir)
    args = [ANALYZE, *(["--user"] if user else []), "verify", str(unit)]
    return subprocess.run(
        args, capture_output=True, text=True, env=env, cwd=unit.parent, timeout=60, check=False
    )


def assert_clean(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr


@needs_analyze
def test_system_unit_verifies(tmp_path: Path) -> None:
    unit = with_executable(SYSTEM_UNIT, tmp_path)
    assert_clean(verify(unit, user=False, runtime_dir=tmp_path / "run"))


@needs_analyze
def test_user_unit_verifies(tmp_path: Path) -> None:
    unit = with_executable(USER_UNIT, tmp_path / "units")
    assert_clean(verify(unit, user=True, runtime_dir=tmp_path / "run"))


@needs_analyze
@pytest.mark.parametrize("unit", [MOUNT_UNIT, AUTOMOUNT_UNIT], ids=lambda p: p.name)
def test_mount_units_verify(unit: Path, tmp_path: Path) -> None:
    copy = tmp_path / unit.name
    shutil.copy(unit, copy)
    assert_clean(verify(copy, user=False, runtime_dir=tmp_path / "run"))


@needs_analyze
def test_verify_check_catches_a_bad_value(tmp_path: Path) -> None:
    """Control: the same check fails for a unit with an invalid value (exit status 0!)."""
    unit = with_executable(SYSTEM_UNIT, tmp_path)
    unit.write_text(unit.read_text().replace("Type=notify", "Type=notifyy"))
    proc = verify(unit, user=False, runtime_dir=tmp_path / "run")
    assert "notifyy" in proc.stderr


@needs_analyze
def test_verify_check_catches_a_missing_executable(tmp_path: Path) -> None:
    unit = tmp_path / SYSTEM_UNIT.name
    shutil.copy(SYSTEM_UNIT, unit)
    text = unit.read_text()
    unit.write_text(re.sub(r"^ExecStart=\S+", "ExecStart=/nonexistent/xnatfs", text, flags=re.M))
    proc = verify(unit, user=False, runtime_dir=tmp_path / "run")
    assert proc.returncode != 0
    assert "/nonexistent/xnatfs" in proc.stderr


@pytest.mark.parametrize("unit", [SYSTEM_UNIT, USER_UNIT], ids=["system", "user"])
def test_service_contract(unit: Path) -> None:
    s = settings(unit)
    assert s["Type"] == ["notify"]
    assert s["NotifyAccess"] == ["main"]
    assert s["Restart"] == ["on-failure"]
    assert s["KillSignal"] == ["SIGTERM"]
    assert s["KillMode"] == ["mixed"]
    assert "RestartSec" in s
    assert "TimeoutStopSec" in s
    (exec_start,) = s["ExecStart"]
    argv = exec_start.split()
    assert argv[0].endswith("/xnatfs")
    assert argv[1:3] == ["mount", "--foreground"]
    config = argv[argv.index("--config") + 1]
    assert config.endswith("/xnatfs/%i.toml")
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    for key in NAMESPACE_OPTIONS:
        assert key not in s, f"{key}= would hide the mount from the host"
    # No credential on a command line or in the environment.
    for value in exec_start.split():
        assert "password" not in value.lower() or value == "--password-file"
    assert "Environment" not in s


def test_system_unit_specifics() -> None:
    s = settings(SYSTEM_UNIT)
    assert s["After"] == ["network-online.target"]
    assert s["Wants"] == ["network-online.target"]
    assert s["LoadCredential"] == ["xnatfs-password:/etc/xnatfs/%i.password"]
    assert s["ExecStart"][0].split()[0] == "/usr/local/bin/xnatfs"
    assert "/etc/xnatfs/%i.toml" in s["ExecStart"][0]
    assert s["WantedBy"] == ["multi-user.target"]


def test_user_unit_specifics() -> None:
    s = settings(USER_UNIT)
    assert s["WantedBy"] == ["default.target"]
    assert "%E/xnatfs/%i.toml" in s["ExecStart"][0]
    # The user manager cannot see the system's network-online.target.
    assert "network-online.target" not in " ".join(s.get("After", []) + s.get("Wants", []))


def test_mount_unit_contract() -> None:
    s = settings(MOUNT_UNIT)
    assert s["Type"] == ["fuse.xnatfs"]
    assert s["Where"] == ["/mnt/xnat"]
    options = s["Options"][0].split(",")
    assert "ro" in options
    assert "_netdev" in options
    # What the helper will run for these options (translation must accept every one).
    args = translate_options(s["Options"][0]).args
    assert "--config=/etc/xnatfs/site.toml" in args
    assert settings(AUTOMOUNT_UNIT)["Where"] == ["/mnt/xnat"]


def test_fstab_example_lines_are_accepted_by_the_helper() -> None:
    lines = [
        line.lstrip("# ").split()
        for line in (SYSTEMD_DIR / "fstab.example").read_text().splitlines()
        if "fuse.xnatfs  " in line
    ]
    assert len(lines) == 2
    for source, mountpoint, fstype, options, dump, passno in lines:
        assert source.startswith("https://")
        assert mountpoint == "/mnt/xnat"
        assert fstype == "fuse.xnatfs"
        assert (dump, passno) == ("0", "0")
        assert "ro" in options.split(",")
        translate_options(options)  # raises on anything the helper would refuse


def test_example_toml_is_a_valid_configuration() -> None:
    url, mountpoint, options = load_config_file(SYSTEMD_DIR / "example.toml")
    assert url == "https://xnat.example.org"
    assert mountpoint == "/mnt/xnat"
    config = build_config(url, mountpoint, options)
    assert config.cache_size == 50 * 1024**3
    assert config.metadata_ttl == 300
    assert config.allow_other is True
