"""What extended attributes cost a listing: `ls -l` against `ls` on one 50,000-file directory.

`ls -l` asks every file for `security.selinux` and `system.posix_acl_access` (names no xnatfs
entry has), and a FUSE filesystem is asked every time: the kernel caches no extended attributes.
This runs both listings on a warm mount (listing cached, attributes cached by the kernel) of a
demo site with one resource of `--files` files, `--runs` times each, and prints the medians.

    .venv/bin/python -m bench.xattrs [--files 50000] [--runs 5] [-- extra mount options]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.mounting import MountSpec, mounted
from xnatfs.demo import DEMO_PASSWORD, DEMO_USER, DemoServer, build_demo_site

PROJECT, SUBJECT, SESSION = "XATTR", "x", "x_MR1"


def build_site(files: int) -> DemoServer:
    site = build_demo_site()
    site.add_project(PROJECT, "xattr benchmark")
    site.add_subject(PROJECT, SUBJECT)
    exp = site.add_experiment(PROJECT, SUBJECT, SESSION)
    res = site.add_resource(exp, "MANY", format="TXT")
    for i in range(files):
        site.add_file(res, f"f{i:06d}.txt", b"x", mtime=1678786200.0)
    return DemoServer(site)


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def count_xattr_calls(argv: list[str]) -> dict[str, int]:
    """How many xattr system calls `argv` makes, by call (strace -c), if strace is there."""
    out = subprocess.run(
        [
            "strace",
            "-f",
            "-c",
            "-e",
            "trace=%file,getxattr,lgetxattr,listxattr,llistxattr",
            "-o",
            "/dev/stderr",
            *argv,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    counts = {}
    for line in out.stderr.splitlines():
        fields = line.split()
        if fields and fields[-1].endswith("xattr") and fields[-2].isdigit():
            counts[fields[-1]] = int(fields[3]) if len(fields) >= 5 else int(fields[-2])
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("options", nargs="*", help="extra xnatfs mount options")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, build_site(args.files) as server:
        spec = MountSpec(server.url, DEMO_USER, DEMO_PASSWORD, Path(tmp))
        options = ["--metadata-ttl", "3600", *args.options]
        with mounted(spec, Path(tmp) / "cache", options=options) as m:
            where = os.fspath(m.path / PROJECT / SUBJECT / SESSION / "resources" / "MANY")
            plain = ["ls", "-U", where]
            long = ["ls", "-lU", "--color=never", where]
            timed(long)  # warm: the listing, and every entry's attributes in the kernel
            results = {}
            for name, argv in (("ls", plain), ("ls -l", long)):
                results[name] = statistics.median(timed(argv) for _ in range(args.runs))
            print(f"{args.files} files, median of {args.runs} warm runs, options {options}")
            for name, seconds in results.items():
                print(f"  {name:6} {seconds * 1000:8.0f} ms")
            print(f"  ratio  {results['ls -l'] / results['ls']:8.1f}")
            print(f"  xattr calls of ls -l: {count_xattr_calls(long)}")


if __name__ == "__main__":
    main()
