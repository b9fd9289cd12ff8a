"""``release_freed_memory``: the heap a thread freed goes back to the OS (glibc Linux)."""

from __future__ import annotations

import json
import subprocess
import sys

# The pattern behind the scoring actor's growth, in a fresh process: a thread frees one
# 16 MiB block (glibc then raises its mmap threshold above 1 MiB), allocates 256 blocks of
# 1 MiB from its arena with a small block after each (so no free run reaches the top of
# the heap) and frees the large ones. Nothing is in use, yet the pages stay resident
# until ``malloc_trim`` returns them.
FRAGMENTED_HEAP = """
import ctypes, json, threading
from negrec.native_memory import release_freed_memory
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
MiB = 1 << 20
def rss_mib():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / MiB
seen = {}
def work():
    libc.free(libc.malloc(16 * MiB))
    blocks, pins = [], []
    for _ in range(256):
        block = libc.malloc(MiB)
        ctypes.memset(block, 1, MiB)
        blocks.append(block)
        pins.append(libc.malloc(64))
    for block in blocks:
        libc.free(block)
    seen["freed"] = rss_mib()
    seen["released"] = release_freed_memory()
    seen["after"] = rss_mib()
thread = threading.Thread(target=work)
thread.start()
thread.join()
print(json.dumps(seen))
"""


def test_freed_heap_of_a_thread_is_returned_to_the_os() -> None:
    done = subprocess.run(
        [sys.executable, "-c", FRAGMENTED_HEAP], capture_output=True, text=True, check=True
    )
    seen = json.loads(done.stdout)
    assert seen["released"] is True
    assert seen["freed"] - seen["after"] > 200, seen  # of the 256 MiB freed
