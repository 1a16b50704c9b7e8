"""Never answers initialize, and keeps a child process of its own (both must be gone after validation)."""

import subprocess
import sys
import time

subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
while True:
    time.sleep(1)
