"""`python -m xnatfs.demo [--host H] [--port N] [--context-path /xnat] [--latency S]
[--bandwidth BPS] [--big-file SIZE]`: run the demo XNAT in the foreground."""

from __future__ import annotations

import argparse

from xnatfs.config import parse_size
from xnatfs.demo import serve_forever
from xnatfs.errors import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xnatfs.demo", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--context-path", default="", help="e.g. /xnat")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    parser.add_argument("--bandwidth", default="0", help="bytes/s per response, e.g. 50M")
    parser.add_argument("--big-file", default="0", help="add a file of this size, e.g. 1G")
    args = parser.parse_args(argv)
    try:
        bandwidth = parse_size(args.bandwidth)
        big = parse_size(args.big_file)
    except ConfigError as exc:
        parser.error(str(exc))
    return serve_forever(
        args.host,
        args.port,
        context_path=args.context_path,
        latency=args.latency,
        bandwidth=bandwidth,
        big_file_size=big,
    )


if __name__ == "__main__":
    raise SystemExit(main())
