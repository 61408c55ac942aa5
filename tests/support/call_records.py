"""What chosen methods of an object returned, call by call: a test counts the reads a path makes
by wrapping the real methods (the calls still go through)."""

from __future__ import annotations

from typing import Any


class Calls:
    """Calls of watched methods, each under a label, with what each returned."""

    def __init__(self) -> None:
        self.returned: dict[str, list[Any]] = {}

    def watch(self, label: str, obj: Any, name: str) -> None:
        real = getattr(obj, name)
        self.returned[label] = []

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            result = real(*args, **kwargs)
            self.returned[label].append(result)
            return result

        setattr(obj, name, wrapped)

    def count(self, label: str) -> int:
        return len(self.returned[label])

    def total(self) -> int:
        return sum(len(results) for results in self.returned.values())

    def clear(self) -> None:
        for results in self.returned.values():
            results.clear()
