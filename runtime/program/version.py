"""The Program format's version: a saved Program of another version is refused, not guessed at."""
FORMAT_VERSION = 1
