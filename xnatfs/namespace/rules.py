"""The namespace's rules for names, numbers and dates: pure functions of XNAT's strings.

Listings send every cell as a string (REST reference §2.1); these turn them into entry names,
sizes and times, and back into the values a request needs.
"""

from __future__ import annotations

import calendar
import re
import time

# A `/` inside an XNAT value (scan types may hold one) cannot be a name character.
SLASH_STANDIN = "\u2215"


def display_name(value: str) -> str | None:
    """The entry name for an XNAT value, or None when it cannot be shown."""
    name = value.replace("/", SLASH_STANDIN).replace("\0", "")
    if name in ("", ".", ".."):
        return None
    return name


def server_value(name: str) -> str:
    """The XNAT value an entry name stands for (the inverse of `display_name`)."""
    return name.replace(SLASH_STANDIN, "/")


MAX_SIZE = (1 << 63) - 1  # the largest st_size (off_t) the kernel can be told


def parse_size(text: str) -> int | None:
    """A listing's `Size` cell in bytes; None (unknown) when empty, not a number, negative, or
    larger than a file size can be."""
    text = text.strip()
    if not text or len(text) > 20:
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return value if 0 <= value <= MAX_SIZE else None


_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d")


def parse_time_ns(text: str) -> int | None:
    """XNAT date/time strings (server-local, taken as UTC) to epoch nanoseconds."""
    text = text.strip()
    for fmt in _DATE_FORMATS:
        try:
            parsed = time.strptime(text, fmt)
        except ValueError:
            continue
        return calendar.timegm(parsed) * 1_000_000_000
    return None


def natural_key(name: str) -> tuple[object, ...]:
    """Sort `2.dcm` before `10.dcm`, as people and DICOM instance numbers expect."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))
