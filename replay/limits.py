"""What a recording file may make this process allocate: bounds every reader checks before it trusts a size.

Files declare sizes (rows, matrix dimensions, pickled byte counts). None is believed before it is
compared with these bounds, so a broken or hostile file ends in one line instead of an OOM kill.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .recording import MAX_SAMPLES, RecordingError

MAX_CSV_LINE_CHARS = 65_536  # a CSV row of a recording is a few numbers; binary junk has no newlines
MEMORY_SHARE = 0.5  # a reader plans to use at most this share of the memory available when it starts


def available_memory_bytes() -> int:
    """Memory this process can still take: the kernel's MemAvailable, capped by a cgroup limit if any."""
    candidates = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    candidates.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            limit, usage = Path(limit_file).read_text().strip(), Path(usage_file).read_text().strip()
            if limit != "max":
                candidates.append(max(0, int(limit) - int(usage)))
        except (OSError, ValueError):
            pass
    if not candidates:
        try:
            candidates.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (OSError, ValueError, AttributeError):
            candidates.append(1 << 62)  # cannot tell: the sample and size bounds still apply
    return min(candidates)


def reader_budget_bytes() -> int:
    return int(available_memory_bytes() * MEMORY_SHARE)


def format_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def check_allocation(n_bytes: int, what: str, where: str, budget: int | None = None) -> None:
    """Refuse before allocating `n_bytes` for `what` if it exceeds the reader's memory budget."""
    budget = reader_budget_bytes() if budget is None else budget
    if n_bytes > budget:
        raise RecordingError(
            f"{where}: {what} would need {format_bytes(n_bytes)} of memory, more than the {format_bytes(budget)} "
            f"a reader may use here (half of what is available)"
        )


def check_sample_count(n: int, where: str) -> None:
    if n > MAX_SAMPLES:
        raise RecordingError(f"{where}: {n:,} samples is more than the {MAX_SAMPLES:,} a recording may have; split the file")


def regular_file_size(path: Path) -> int:
    """Size of a regular file; devices, pipes and sockets are refused (`/dev/zero` never ends)."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise RecordingError(f"{path}: cannot read ({e.strerror or e})") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a device, pipe or socket"
        raise RecordingError(f"{path}: is {kind}, not a recording file")
    return st.st_size
