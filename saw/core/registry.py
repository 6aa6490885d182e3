"""A small name -> function registry (as verl's ``core_algos`` does).

Adding an algorithm is one decorated function; everything else selects it by name
from config. Unknown names raise a ``ValueError`` that lists the valid ones.
"""

from __future__ import annotations

from typing import Any, Callable, Generic, Iterable, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names (and aliases) to objects, with metadata per entry."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, *, aliases: Iterable[str] = (), **meta: Any) -> Callable[[T], T]:
        """Decorator: ``@REG.register("name", aliases=("other",), key=value)``."""

        def deco(obj: T) -> T:
            key = name.lower()
            if key in self._items or key in self._aliases:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[key] = obj
            self._meta[key] = dict(meta)
            for alias in aliases:
                self._aliases[alias.lower()] = key
            return obj

        return deco

    def canonical(self, name: str) -> str:
        """The registered name for ``name`` (resolving aliases); raises if unknown."""
        if not isinstance(name, str):
            raise TypeError(f"{self.kind} name must be a string, got {type(name).__name__}")
        key = name.lower()
        key = self._aliases.get(key, key)
        if key not in self._items:
            raise ValueError(f"unknown {self.kind} {name!r}; valid names: {self.describe()}")
        return key

    def get(self, name: str) -> T:
        return self._items[self.canonical(name)]

    def meta(self, name: str) -> dict[str, Any]:
        return self._meta[self.canonical(name)]

    def describe(self) -> str:
        """"a, b (what b is), c": the valid names with the ``description`` each was registered with."""
        return ", ".join(f"{n} ({self._meta[n]['description']})" if self._meta[n].get("description") else n
                         for n in self.names())

    def names(self, with_aliases: bool = False) -> list[str]:
        names = sorted(self._items)
        if with_aliases:
            names += sorted(self._aliases)
        return names

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.lower()
        return key in self._items or key in self._aliases
