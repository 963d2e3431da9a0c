"""What machine a benchmark ran on, for the record in bench/RESULTS.md."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def machine() -> dict[str, str]:
    ram = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {
        "arch": platform.machine(),
        "cores": str(os.cpu_count()),
        "ram": ram,
        "python": platform.python_version(),
    }
