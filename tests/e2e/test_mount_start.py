"""Starting a mount as a new user does: the reasons a start fails, where they are shown, and
mounting part of a server (`--project`). Real commands, real mounts of the demo XNAT."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.mounting import mount_env, require_fuse, tmp_mounted, unmount
from xnatfs.demo import DEMO_PASSWORD, DEMO_USER, DemoServer

pytestmark = pytest.mark.fuse


def xnatfs(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xnatfs", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No credentials and a fresh HOME (so no netrc and a default cache under tmp_path)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XNATFS_", "NETRC"))}
    env["HOME"] = os.fspath(tmp_path / "home")
    env.pop("XDG_CACHE_HOME", None)
    env.update(extra)
    return env


def test_a_background_mount_prints_the_real_reason(demo: DemoServer, tmp_path: Path) -> None:
    require_fuse()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    cases = [
        (
            clean_env(tmp_path, XNATFS_USER=DEMO_USER),
            f"xnatfs: no password for user {DEMO_USER!r}: set XNATFS_PASSWORD, use "
            "--password-file or add a netrc entry",
        ),
        (
            clean_env(tmp_path, XNATFS_USER=DEMO_USER, XNATFS_PASSWORD="wrong-password"),
            f"xnatfs: XNAT rejected the credentials for user {DEMO_USER!r}",
        ),
        (
            clean_env(tmp_path),
            f"xnatfs: {demo.url} requires a login: set XNATFS_USER and XNATFS_PASSWORD, "
            "use --password-file or a netrc entry",
        ),
    ]
    for env, message in cases:
        out = xnatfs("mount", demo.url, os.fspath(mnt), env=env)
        assert (out.returncode, out.stderr.strip()) == (1, message)
        assert out.stdout == ""
    assert not (tmp_path / "home").exists(), "a failed start leaves no log file behind"
    with open("/proc/self/mountinfo") as f:
        assert os.fspath(mnt) not in f.read()


def test_a_mistyped_url_leaves_no_log_and_a_missing_context_path_gets_a_hint(
    tmp_path: Path,
) -> None:
    require_fuse()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    env = clean_env(tmp_path, XNATFS_USER=DEMO_USER, XNATFS_PASSWORD=DEMO_PASSWORD)
    with DemoServer(context_path="/xnat") as server:
        without = server.url.removesuffix("/xnat")
        out = xnatfs("mount", without, os.fspath(mnt), env=env)
        assert out.returncode == 1
        assert out.stderr.strip() == (
            f"xnatfs: {without} does not look like an XNAT server (no project listing at "
            f"{without}/data/projects): does this URL include the XNAT context path?"
        )
        out = xnatfs("mount", "http://127.0.0.1:9/xnat", os.fspath(mnt), env=env)
        assert out.returncode == 1
        assert out.stderr.startswith("xnatfs: cannot reach http://127.0.0.1:9/xnat: ")
    assert not (tmp_path / "home").exists(), "no stray log file (nor its directories)"


def test_log_file(demo: DemoServer, tmp_path: Path) -> None:
    require_fuse()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    log = tmp_path / "xnatfs.log"
    env = clean_env(tmp_path, XNATFS_USER=DEMO_USER, XNATFS_PASSWORD=DEMO_PASSWORD)
    cache = os.fspath(tmp_path / "cache")
    out = xnatfs(
        "mount",
        demo.url,
        os.fspath(mnt),
        "--cache-dir",
        cache,
        "--log-file",
        os.fspath(log),
        env=env,
    )
    try:
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().endswith(f"log {log})")
        assert f"mounted {demo.url} on {mnt}" in log.read_text()
        assert oct(log.stat().st_mode & 0o777) == "0o600"
    finally:
        unmount(mnt)


def test_only_the_projects_asked_for(demo: DemoServer, tmp_path: Path) -> None:
    def root(*options: str, name: str) -> list[str]:
        with tmp_mounted(
            demo.url, tmp_path, user=DEMO_USER, password=DEMO_PASSWORD, options=options, name=name
        ) as m:
            return sorted(os.listdir(m.path))

    assert root("--project", "TEST", name="a") == ["TEST"]
    assert root("-o", "project=TEST,project=STUDY", name="b") == ["STUDY", "TEST"]
    toml = tmp_path / "site.toml"
    toml.write_text('project = ["STUDY"]\n')
    assert root("--config", os.fspath(toml), name="c") == ["STUDY"]
    # The command line's projects replace the file's.
    assert root("--config", os.fspath(toml), "--project", "TEST", name="d") == ["TEST"]


@pytest.mark.parametrize(
    ("project", "problem"),
    [
        ("NOPE", "does not exist or is not visible to"),
        ("SECRET", "does not exist or is not visible to"),
        ("LOCKED", "is not readable by"),
    ],
)
def test_a_project_that_cannot_be_mounted_is_refused_at_start(
    demo: DemoServer, tmp_path: Path, project: str, problem: str
) -> None:
    require_fuse()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    out = xnatfs(
        "mount",
        demo.url,
        os.fspath(mnt),
        "--foreground",
        "--cache-dir",
        os.fspath(tmp_path / "c"),
        "--project",
        "TEST",
        "--project",
        project,
        env=mount_env(DEMO_USER, DEMO_PASSWORD),
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == (
        f"xnatfs: project {project!r} on {demo.url} {problem} user {DEMO_USER!r}"
    )
    with open("/proc/self/mountinfo") as f:
        assert os.fspath(mnt) not in f.read()
