"""Optional cgroups for a sandbox: a process cap and a memory cap for the whole sandbox, and a sure kill.

Resource limits (setrlimit) apply per process, and the process-count limit is not enforced for processes
whose user is root outside the sandbox. Where we may create cgroups (cgroup v1 `pids` and `memory`
hierarchies) each sandbox gets its own, below the cgroup we run in. Where we
may not, the rlimits stand alone; /api/health says which.
"""

import logging
import os
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

ROOT = Path("/sys/fs/cgroup")


def _own_paths() -> dict[str, str]:
    """{controller: our cgroup path} (v1 hierarchies)."""
    paths = {}
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                paths[controller] = path
    except OSError:
        pass
    return paths


def _v1_dir(controller: str) -> Path | None:
    path = _own_paths().get(controller)
    folder = ROOT / controller
    if path is None or not (folder / "cgroup.procs").exists():
        return None
    return folder / path.lstrip("/")


@dataclass
class SandboxCgroup:
    """The cgroups of one sandbox; `procs_files` are where the launcher writes its pid before it starts bwrap."""

    dirs: dict[str, Path] = field(default_factory=dict)

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs.values()]

    def limit_hits(self) -> list[str]:
        hits = []
        pids = self.dirs.get("pids")
        if pids is not None and _counter(pids / "pids.events", "max") > 0:
            hits.append("processes")
        memory = self.dirs.get("memory")
        if memory is not None:
            if _read_int(memory / "memory.failcnt") > 0:
                hits.append("memory")
        return hits

    def kill_and_remove(self) -> int:
        """SIGKILL every process still in the sandbox's cgroups, then remove them; returns how many were killed."""
        killed = 0
        for _ in range(500):
            pids = {int(p) for d in self.dirs.values() for p in _read(d / "cgroup.procs").split() if p.isdigit()}
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
                except ProcessLookupError:
                    pass
            time.sleep(0.002)
        for folder in self.dirs.values():
            for _ in range(500):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.002)
        return killed


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _read_int(path: Path) -> int:
    text = _read(path).strip()
    return int(text) if text.isdigit() else 0


def _counter(path: Path, name: str) -> int:
    for line in _read(path).splitlines():
        key, _, value = line.partition(" ")
        if key == name and value.strip().isdigit():
            return int(value)
    return 0


def create(*, max_processes: int, memory_bytes: int) -> SandboxCgroup:
    """New cgroups for one sandbox where the system lets us; an empty SandboxCgroup where it does not."""
    name = f"mcpagent-sandbox-{uuid.uuid4().hex[:16]}"
    group = SandboxCgroup()
    settings_by_controller = {
        "pids": {"pids.max": str(max_processes)},
        "memory": {"memory.limit_in_bytes": str(memory_bytes), "memory.memsw.limit_in_bytes": str(memory_bytes)},
    }
    for controller, values in settings_by_controller.items():
        parent = _v1_dir(controller)
        if parent is None:
            continue
        folder = parent / name
        try:
            folder.mkdir()
        except OSError:
            continue
        try:
            for file, value in values.items():
                if (folder / file).exists():
                    (folder / file).write_text(value)
        except OSError:
            folder.rmdir()
            continue
        group.dirs[controller] = folder
    return group


_AVAILABLE: list[str] | None = None


def available() -> list[str]:
    """The controllers a sandbox gets (probed once per process by creating and removing a cgroup)."""
    global _AVAILABLE
    if _AVAILABLE is None:
        probe = create(max_processes=64, memory_bytes=1 << 30)
        _AVAILABLE = sorted(probe.dirs)
        probe.kill_and_remove()
    return _AVAILABLE
