"""Where each node of a loaded document came from: JSON pointer -> file, line, column."""

from __future__ import annotations

from dataclasses import dataclass, field

from recipe_engine.diagnostics import Location

__all__ = ["SourceMap", "escape_token", "join_pointer", "parent_pointer"]


def escape_token(token: object) -> str:
    """RFC 6901: '~' -> '~0', '/' -> '~1'."""
    return str(token).replace("~", "~0").replace("/", "~1")


def join_pointer(pointer: str, token: object) -> str:
    return f"{pointer}/{escape_token(token)}"


def parent_pointer(pointer: str) -> str:
    return pointer.rsplit("/", 1)[0] if pointer else ""


@dataclass
class SourceMap:
    """`values[p]` is where the value at pointer p starts; `keys[p]` where its mapping key is."""

    values: dict[str, Location] = field(default_factory=dict)
    keys: dict[str, Location] = field(default_factory=dict)
    # pointers of scalars written in quotes ('8', "8"): a type error there can say "remove
    # the quotes"; a plain `three` cannot
    quoted: set[str] = field(default_factory=set)

    def locate(self, pointer: str, *, prefer_key: bool = False) -> Location | None:
        """The location of `pointer`, or of its nearest ancestor that exists in the document.

        A missing field has no node of its own: the mapping that lacks it is the best place to
        send the user.
        """
        probe = pointer
        while True:
            if prefer_key and probe in self.keys:
                return self.keys[probe]
            if probe in self.values:
                return self.values[probe]
            if not probe:
                return None
            probe = parent_pointer(probe)

    def overlay(self, over: SourceMap) -> SourceMap:
        """Locations of `over` win: used when an including file overrides a fragment."""
        return SourceMap(
            values={**self.values, **over.values},
            keys={**self.keys, **over.keys},
            quoted={p for p in self.quoted if p not in over.values} | over.quoted,
        )

    def prune(self, prefix: str) -> None:
        """Forget everything under `prefix` (a subtree that a merge replaced)."""
        for table in (self.values, self.keys):
            for key in [k for k in table if k == prefix or k.startswith(prefix + "/")]:
                del table[key]
        self.quoted = {k for k in self.quoted if k != prefix and not k.startswith(prefix + "/")}
