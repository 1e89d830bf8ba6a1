"""The command line: option sources and their precedence, one-line errors, no mount."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from xnatfs import __version__
from xnatfs.app import cli, mounts
from xnatfs.errors import ConfigError


def config_of(*argv: str) -> object:
    args = cli.build_parser().parse_args(cli.expand_o_options(list(argv)))
    return cli.mount_config(args)


def test_options_from_flags_and_o_form() -> None:
    cfg = config_of(
        "mount",
        "https://xnat.example.org/xnat/",
        "/mnt/x",
        "-o",
        "cache_size=1G,allow_other",
        "--metadata-ttl",
        "5",
    )
    assert cfg.url == "https://xnat.example.org/xnat"  # type: ignore[attr-defined]
    assert cfg.cache_size == 1024**3 and cfg.allow_other  # type: ignore[attr-defined]
    assert cfg.metadata_ttl == 5.0  # type: ignore[attr-defined]


def test_command_line_overrides_the_config_file(tmp_path: Path) -> None:
    toml = tmp_path / "site.toml"
    toml.write_text(
        'url = "https://xnat.example.org"\nmountpoint = "/mnt/xnat"\n'
        'cache_size = "2G"\nmetadata_ttl = 30\n'
    )
    cfg = config_of("mount", "--config", str(toml), "--cache-size", "3G")
    assert cfg.url == "https://xnat.example.org"  # type: ignore[attr-defined]
    assert str(cfg.mountpoint) == "/mnt/xnat"  # type: ignore[attr-defined]
    assert cfg.cache_size == 3 * 1024**3 and cfg.metadata_ttl == 30.0  # type: ignore[attr-defined]


def test_config_file_unknown_key_names_it(tmp_path: Path) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text('url = "https://x.org"\nmountpoint = "/m"\ncache_sise = "1G"\n')
    with pytest.raises(ConfigError, match="cache_sise"):
        config_of("mount", "--config", str(toml))


@pytest.mark.parametrize(
    ("argv", "phrase"),
    [
        (["mount", "https://u:p@x.org", "/m"], "credentials"),
        (["mount", "ftp://x.org", "/m"], "URL"),
        (["mount", "https://x.org", "/m", "--cache-size", "lots"], "cache_size"),
        (["mount", "https://x.org", "/m", "--max-connections", "0"], "max_connections"),
        (["mount", "https://x.org", "/m", "-o", "rw,selectors=some"], "selectors"),
        (["mount"], "URL"),
    ],
)
def test_bad_input_is_one_line_and_status_2(
    argv: list[str], phrase: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and phrase in err[0] and err[0].startswith("xnatfs: ")
    assert "u:p" not in err[0]


def test_a_url_first_is_the_mount_helper_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    # mount.fuse3 runs `xnatfs URL MOUNTPOINT -o ...` when no mount.fuse.xnatfs is installed.
    status = cli.main(
        ["https://xnat.example.org", "/mnt/x", "-f", "-o", "ro,cache_size=1G,dev,suid"]
    )
    assert status == 0
    err = capsys.readouterr().err
    assert "xnatfs mount https://xnat.example.org /mnt/x --cache-size=1G" in err
    assert sys.executable in err


@pytest.mark.parametrize(
    "argv",
    [
        ["mount", "https://x.org", "/m", "--password", "hunter22"],
        ["mount", "https://x.org", "/m", "--token=hunter22"],
        ["demo", "--pass", "hunter22"],
    ],
)
def test_passwords_on_the_command_line_are_refused_unseen(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "is not allowed" in err and "--password-file FILE" in err
    assert "hunter22" not in err


def test_option_names_are_not_abbreviated() -> None:
    # `--password-f` would once have been taken for --password-file, and `--passw` as well.
    with pytest.raises(SystemExit):
        config_of("mount", "https://x.org", "/m", "--cache-s", "1G")


def fake_fusermount(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "fusermount3"
    tool.write_text("#!/bin/sh\n" + script)
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))


def test_umount_reports_fusermount_and_suggests_lazy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_fusermount(tmp_path, monkeypatch, 'echo "fusermount3: /m: busy" >&2\nexit 1\n')
    assert cli.main(["umount", "/m"]) == cli.EXIT_FAILED
    assert capsys.readouterr().err == (
        "xnatfs: fusermount3: /m: busy (busy? close files there, or use --lazy)\n"
    )
    assert cli.main(["umount", "--lazy", "/m"]) == cli.EXIT_FAILED
    assert capsys.readouterr().err == "xnatfs: fusermount3: /m: busy\n"


def test_umount_succeeds_quietly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_fusermount(tmp_path, monkeypatch, "exit 0\n")
    assert cli.main(["umount", "/m"]) == 0
    assert capsys.readouterr() == ("", "")


def test_umount_without_fusermount_is_a_setup_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(mounts, "fusermount_command", lambda: None)
    assert cli.main(["umount", "/m"]) == cli.EXIT_USAGE
    assert capsys.readouterr().err == "xnatfs: fusermount3 not found (install the fuse3 package)\n"


def run_xnatfs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xnatfs", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version_short_and_long(flag: str) -> None:
    out = run_xnatfs(flag)
    assert (out.returncode, out.stdout) == (0, f"xnatfs {__version__}\n")


def test_mount_help_gives_two_examples_and_every_source_of_credentials() -> None:
    out = run_xnatfs("mount", "--help")
    assert out.returncode == 0
    text = out.stdout
    examples = text.split("examples:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert len(examples) == 2 and all("xnatfs mount https://" in e for e in examples)
    for name in ("XNATFS_USER", "XNATFS_PASSWORD", "--password-file", "netrc", "--project"):
        assert name in text, name


def test_a_mistyped_option_is_named_but_what_follows_is_never_echoed() -> None:
    out = run_xnatfs("mount", "https://x", "/mnt", "--passwrd", "hunter2-value")
    assert out.returncode == 2
    assert out.stderr.splitlines()[-1] == "xnatfs: error: unrecognized arguments: --passwrd"
    assert "hunter2-value" not in out.stderr


def test_the_refusal_of_password_names_the_command_line_spelling() -> None:
    out = run_xnatfs("mount", "https://x", "/mnt", "--password", "hunter2-value")
    assert out.returncode == 2
    assert "use --password-file FILE (a file of mode 0600)" in out.stderr
    assert "hunter2-value" not in out.stderr
