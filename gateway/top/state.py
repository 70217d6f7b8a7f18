"""The keys of `tidegate top` and what they change, without curses.

``UiState.key`` takes a key code as curses' ``getch`` returns it (an int: a
character's code point, or a ``KEY_*`` constant) so the whole key map is
unit-tested with plain ints; the curses shell only passes codes along.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

VIEWS = ("overview", "drivers", "outbox & uplinks", "actions & commands")

TAB = 9
ENTER = (10, 13)
ESCAPE = 27
BACKSPACE = (8, 127, 263)
"""^H, DEL and curses' KEY_BACKSPACE (263): terminals send any of them."""

KEYS_HELP = (
    ("q", "quit"),
    ("p", "pause / resume (the screen stays as it is)"),
    ("1-4, Tab", "views: " + ", ".join(f"{i} {v}" for i, v in enumerate(VIEWS, 1))),
    ("/", "filter by source (a glob: green*, *meter*); Enter applies, empty shows all"),
    ("Esc", "leave the filter prompt or this help"),
    ("?", "this help"),
)


@dataclass(slots=True)
class UiState:
    """What the person chose: view, filter, pause, help; and whether to quit."""

    view: int = 0
    filter: str = ""
    paused: bool = False
    help: bool = False
    editing: str | None = None
    """The filter being typed after ``/`` (None: not typing)."""
    quit: bool = False

    def key(self, code: int) -> bool:
        """Apply one key; True when the screen must be drawn again."""
        if self.editing is not None:
            return self._edit(code)
        char = chr(code) if 0 <= code < 0x110000 else ""
        if char in ("q", "Q"):
            self.quit = True
        elif char == "p":
            self.paused = not self.paused
        elif char and char in "1234":
            self.view, self.help = int(char) - 1, False
        elif code == TAB:
            self.view, self.help = (self.view + 1) % len(VIEWS), False
        elif char == "/":
            self.editing = self.filter
        elif char == "?":
            self.help = not self.help
        elif code == ESCAPE and self.help:
            self.help = False
        else:
            return False
        return True

    def _edit(self, code: int) -> bool:
        assert self.editing is not None
        if code in ENTER:
            self.filter, self.editing = self.editing.strip(), None
        elif code == ESCAPE:
            self.editing = None
        elif code in BACKSPACE:
            self.editing = self.editing[:-1]
        elif 32 <= code < 127 and len(self.editing) < 60:
            self.editing += chr(code)
        else:
            return False
        return True

    def shows(self, source: str) -> bool:
        """Whether a source passes the filter (no filter: every source)."""
        return not self.filter or fnmatchcase(source, self.filter)
