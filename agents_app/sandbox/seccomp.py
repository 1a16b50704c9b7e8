"""A seccomp filter for the sandbox: system calls no MCP server needs, which widen the kernel surface a
compromised server could attack, fail with EPERM.

Built with the system's libseccomp (through ctypes: Debian's libseccomp2, present wherever apt is) into a
BPF program that bwrap loads with `--seccomp FD`. Where libseccomp is missing the sandbox runs without the
filter, and /api/health says so.
"""

import ctypes
import ctypes.util
import errno
import logging
import os
import tempfile
from functools import cache

logger = logging.getLogger(__name__)

# Tracing other processes, kernel keyrings, BPF and perf, (u)mounting and namespaces beyond bwrap's, kernel
# modules and kexec, userfaultfd (a classic exploit primitive), and the clock and reboot.
DENIED_SYSCALLS = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    "keyctl", "add_key", "request_key",
    "bpf", "perf_event_open",
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsmount", "fsconfig",
    "fspick", "mount_setattr", "setns",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "userfaultfd", "acct", "quotactl", "swapon", "swapoff", "reboot",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "iopl", "ioperm", "lookup_dcookie", "nfsservctl", "vhangup",
)
_SCMP_ACT_ALLOW = 0x7FFF0000


def _act_errno(code: int) -> int:
    return 0x00050000 | (code & 0x0000FFFF)


@cache
def filter_path() -> str | None:
    """A file holding the compiled filter (written once per process), or None without libseccomp."""
    name = ctypes.util.find_library("seccomp")
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    context = lib.seccomp_init(_SCMP_ACT_ALLOW)
    if not context:
        return None
    try:
        for syscall in DENIED_SYSCALLS:
            number = lib.seccomp_syscall_resolve_name(syscall.encode())
            if number < 0:
                continue  # not on this architecture
            if lib.seccomp_rule_add(context, _act_errno(errno.EPERM), number, 0) != 0:
                logger.warning("seccomp: could not add a rule for %s", syscall)
        folder = tempfile.mkdtemp(prefix="mcpagent-seccomp-")
        path = os.path.join(folder, "filter.bpf")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            if lib.seccomp_export_bpf(context, fd) != 0:
                return None
        finally:
            os.close(fd)
        os.chmod(folder, 0o755)
        return path
    finally:
        lib.seccomp_release(context)
