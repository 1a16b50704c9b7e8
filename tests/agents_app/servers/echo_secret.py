"""Prints its API_KEY in its start-up error, as careless servers do: our error message must not repeat it."""

import os
import sys

print(f"fatal: could not start with API_KEY={os.environ.get('API_KEY')}", file=sys.stderr)
sys.exit(1)
