"""Open directory and file handles: small integer numbers mapped to per-open state."""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class HandleTable(Generic[T]):
    """Allocates handle numbers (never reused within a mount) and holds what each one refers to."""

    def __init__(self) -> None:
        self._next = 1
        self._items: dict[int, T] = {}

    def add(self, item: T) -> int:
        fh = self._next
        self._next += 1
        self._items[fh] = item
        return fh

    def get(self, fh: int) -> T:
        """The item behind `fh`; KeyError for a handle that was never issued or is released."""
        return self._items[fh]

    def pop(self, fh: int) -> T | None:
        return self._items.pop(fh, None)

    def __len__(self) -> int:
        return len(self._items)
