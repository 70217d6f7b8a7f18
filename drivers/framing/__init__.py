"""Framing: cutting a byte stream into frames (line, delimiter, fixed, binary)."""
