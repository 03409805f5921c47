"""Measuring cost: the peak memory of a block of code, and a description of the machine a figure was measured on."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import platform
from pathlib import Path

import torch

PROC_STATUS = Path("/proc/self/status")
PROC_CLEAR_REFS = Path("/proc/self/clear_refs")


class PeakMemory:
    """Peak memory of a ``with`` block above what was in use when it began: ``peak_bytes`` after the block.

    - CUDA: ``torch.cuda.max_memory_allocated`` (live tensors; not the caching allocator's spare reserve).
    - CPU: the process's resident-set high-water mark (Linux ``VmHWM``), reset on entry through
      ``/proc/self/clear_refs``. It sees every allocation (torch's, numpy's, Python's), not only tensors, so compare
      configurations each run in a fresh process. Free heap memory is handed back to the OS on entry
      (``malloc_trim``), so that memory the allocator kept from earlier work does not hide the block's growth.
    """

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.peak_bytes = 0
        self._start = 0

    def __enter__(self) -> PeakMemory:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
        else:
            _trim_heap()
            try:
                PROC_CLEAR_REFS.write_text("5")  # 5: reset the peak RSS to the current RSS (Linux >= 4.0)
            except OSError as exc:
                raise RuntimeError(f"CPU peak memory needs a writable {PROC_CLEAR_REFS} (Linux): {exc}") from exc
            self._start = _status_bytes("VmRSS")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            peak = _status_bytes("VmHWM")
        self.peak_bytes = max(0, peak - self._start)


def _status_bytes(field: str) -> int:
    """A ``kB`` field of /proc/self/status, in bytes."""
    for line in PROC_STATUS.read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{PROC_STATUS} has no {field} field")


def _trim_heap() -> None:
    """Return free malloc memory to the OS (glibc); a no-op where the C library has no ``malloc_trim``."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    if hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def machine_info(device: torch.device | str = "cpu") -> dict[str, object]:
    """What a measured figure depends on: CPU model and threads, load, torch version, and the GPU if one is used."""
    device = torch.device(device)
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    info: dict[str, object] = {
        "cpu": names[0] if names else platform.processor() or platform.machine(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info
