"""What the benchmark ran on, so a reader can tell whether two reports are comparable."""
import os
import platform

import numpy as np

from edge_runtime import __version__


def cpu_model():
    """The CPU's marketing name; on a Raspberry Pi the board model, which says more than "ARMv8"."""
    fields = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and value.strip():
                    fields.setdefault(key.strip().lower(), value.strip())
    except OSError:
        pass
    # x86: "model name"; Raspberry Pi: "model" (the board) and "hardware"; other ARM: "cpu part"
    for key in ("model name", "model", "hardware", "processor"):
        if key in fields and not fields[key].isdigit():
            return fields[key]
    return platform.processor() or platform.machine() or "unknown"


def memory_mb():
    """Total RAM in MB from /proc/meminfo (Linux), else None."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024)
    except (OSError, ValueError, IndexError):
        pass
    return None


def describe_machine(runtime_name, runtime_version, threads, use_xnnpack):
    """A JSON-ready description of the machine, software and interpreter settings."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_model(),
        "architecture": platform.machine(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "memory_mb": memory_mb(),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "numpy": np.__version__,
        "interpreter": runtime_name,
        "interpreter_version": runtime_version,
        "threads": list(threads),
        "xnnpack": bool(use_xnnpack),
        "mnist_edge": __version__,
    }
