"""Exits at start-up with an error on stderr, like a server with a broken installation."""

import sys

print("Traceback (most recent call last):\nRuntimeError: boom: configuration file is corrupt", file=sys.stderr)
sys.exit(1)
