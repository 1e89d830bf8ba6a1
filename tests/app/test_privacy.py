"""The password kept out of reach: not dumpable, out of the environment (and of the block
/proc/PID/environ shows), handed to a background child through a pipe, never echoed by the
command line's parser."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from xnatfs.app import privacy
from xnatfs.app.cli import build_parser

SECRET = "pr1vacy-secret-value"

# Runs in a fresh process started with XNATFS_PASSWORD set: what the process shows of itself.
SELF_CHECK = textwrap.dedent(
    """
    import ctypes, os, resource
    from xnatfs.app import privacy
    before = open("/proc/self/environ", "rb").read()
    print(privacy.make_undumpable())
    print(privacy.take_env_password())
    after = open("/proc/self/environ", "rb").read()
    print(b"XNATFS_PASSWORD=" in before, os.environ.get("XNATFS_PASSWORD"))
    print(b"XNATFS_PASSWORD" in after, b"pr1vacy" in after, b"OTHER=kept" in after)
    print(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0), resource.getrlimit(resource.RLIMIT_CORE))
    """
)


def test_the_password_leaves_the_environment_and_the_process_is_not_dumpable() -> None:
    env = dict(os.environ, XNATFS_PASSWORD=SECRET, OTHER="kept")
    out = subprocess.run(
        [sys.executable, "-c", SELF_CHECK], env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == ["True", SECRET, "True None", "False False True", "0 (0, 0)"]


def test_a_child_gets_the_password_through_a_pipe_read_once() -> None:
    env = {"XNATFS_PASSWORD": SECRET, "OTHER": "x"}
    fd = privacy.pass_password(env, SECRET)
    assert "XNATFS_PASSWORD" not in env and env["XNATFS_PASSWORD_FD"] == str(fd)
    assert SECRET not in "".join(env.values())
    assert privacy.take_env_password(env) == SECRET
    assert "XNATFS_PASSWORD_FD" not in env
    with pytest.raises(OSError):
        os.fstat(fd)  # read to its end and closed


def test_without_a_password_there_is_none() -> None:
    assert privacy.take_env_password({}) is None
    assert privacy.take_env_password({"XNATFS_PASSWORD": ""}) is None
    assert privacy.take_env_password({"XNATFS_PASSWORD_FD": "999"}) is None  # not open


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["--passw", SECRET], "unrecognized arguments: --passw\n"),
        ([SECRET, SECRET], "unrecognized arguments: (values without an option)"),
        ([f"--password-f={SECRET}"], "unrecognized arguments: --password-f\n"),
        ([f"--debug={SECRET}"], "argument --debug takes no value"),
    ],
)
def test_the_parser_never_repeats_what_it_does_not_know(
    argv: list[str], shown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["mount", "http://x", "/mnt", *argv])
    err = capsys.readouterr().err
    assert shown in err and SECRET not in err
