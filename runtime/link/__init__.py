"""Linking a Program into generated straight-line Python (the Executable), and a plain stepper."""
