"""sockserve.kernel.cpustat: each CPU's busy time from /proc/stat."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from sockserve.kernel.cpustat import busy_seconds, parse_proc_stat

HZ = os.sysconf("SC_CLK_TCK")
STAT = """cpu  300 10 100 9000 50 0 5 7 0 0
cpu0 100 0 50 4000 20 0 2 3 0 0
cpu1 200 10 50 5000 30 0 3 4 0 0
intr 12345 0 0
cpu2 garbage
ctxt 999
"""


def test_busy_is_every_column_but_idle_and_iowait() -> None:
    busy = parse_proc_stat(STAT)
    assert busy == {0: pytest.approx((100 + 50 + 2 + 3) / HZ), 1: pytest.approx((200 + 10 + 50 + 3 + 4) / HZ)}


def test_only_the_cpus_asked_for_count(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "stat").write_text(STAT)
    assert busy_seconds({1}, root=str(tmp_path)) == pytest.approx(267 / HZ)
    assert busy_seconds(None, root=str(tmp_path)) == pytest.approx((155 + 267) / HZ)
    assert busy_seconds({0}, root=str(tmp_path / "nowhere")) is None


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="Linux /proc")
def test_a_busy_loop_shows_on_its_cpu() -> None:
    cpu = min(os.sched_getaffinity(0))
    before = busy_seconds({cpu})
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        end = time.process_time() + 0.2
        while time.process_time() < end:
            pass
    finally:
        os.sched_setaffinity(0, old)
    after = busy_seconds({cpu})
    assert before is not None and after is not None and after - before >= 0.15
