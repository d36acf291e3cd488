"""The Program format's version: a saved Program of another version is refused, not guessed at.

2 added nested bodies (the `loop` kernel's `body` attr is a Program); a format-1 Program has
none and reads unchanged."""
FORMAT_VERSION = 2
READABLE = (1, 2)
