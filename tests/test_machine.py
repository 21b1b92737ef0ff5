"""sockserve.measure.machine: the CPU other programs took from this process's cores.

The pieces run on fixture trees shaped like /proc; one test measures a real
child process burning a known amount of CPU (a CPU-time count, not a wall
clock: a busy machine does not change it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sockserve.measure.limits import Cores
from sockserve.kernel.cpustat import parse_proc_stat, tree_cpu_seconds
from sockserve.measure.machine import Busy, BusyMeter, CpuCounts

HZ = os.sysconf("SC_CLK_TCK")


def test_proc_stat_busy_time_per_cpu_leaves_out_idle_and_iowait() -> None:
    text = ("cpu  10 0 10 500 5 0 0 0 0 0\n"
            f"cpu0 {HZ} {HZ} {HZ} 999 999 {HZ} {HZ} {HZ} 0 0\n"
            f"cpu1 {2 * HZ} 0 0 5 5 0 0 0 0 0\n"
            "intr 1 2 3\n")
    assert parse_proc_stat(text) == {0: 6.0, 1: 2.0}  # the "cpu" total line is not a CPU


def _proc(root: Path, pid: int, ppid: int, name: str, ticks: tuple[int, int, int, int]) -> None:
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime
    utime, stime, cutime, cstime = ticks
    line = f"{pid} ({name}) S {ppid} 1 1 0 -1 0 0 0 0 0 {utime} {stime} {cutime} {cstime} 20 0 1 0\n"
    (root / "proc" / str(pid)).mkdir(parents=True)
    (root / "proc" / str(pid) / "stat").write_text(line)


def test_a_process_tree_counts_itself_its_descendants_and_what_they_reaped(tmp_path: Path) -> None:
    _proc(tmp_path, 100, 1, "sync.py", (HZ, 0, 2 * HZ, 0))      # 1 s, plus 2 s of reaped children
    _proc(tmp_path, 200, 100, "ipykernel) (x", (HZ, HZ, 0, 0))  # a name with a parenthesis: 2 s
    _proc(tmp_path, 300, 200, "server", (0, HZ, 0, 0))          # a grandchild: 1 s
    _proc(tmp_path, 400, 1, "someone else", (50 * HZ, 0, 0, 0))
    assert tree_cpu_seconds(100, str(tmp_path)) == pytest.approx(6.0)
    assert tree_cpu_seconds(400, str(tmp_path)) == pytest.approx(50.0)


def test_other_programs_took_the_busy_time_that_was_not_ours() -> None:
    cores = Cores(2.0, 2)
    before = CpuCounts(at=0.0, cpus_busy=100.0, tree=10.0, cgroup=None)
    after = CpuCounts(at=10.0, cpus_busy=115.0, tree=14.0, cgroup=None)  # 15 s busy, 4 s ours
    busy = Busy.from_counts(before, after, cores, loadavg=1.5)
    assert busy.own_cores == pytest.approx(0.4) and busy.other_cores == pytest.approx(1.1)
    assert busy.other_share == pytest.approx(0.55)
    assert "other programs took 1.10 of the 2 cores this process may use (55%) over 10 s" in busy.describe()
    again = Busy.from_dict(busy.to_dict())
    assert again.other_cores == pytest.approx(1.1, abs=1e-3) and again.cores_usable == 2.0


def test_under_a_quota_only_what_others_take_beyond_the_spare_cpus_counts() -> None:
    # One core of quota on two CPUs: others may use one CPU without taking anything from us.
    cores = Cores(1.0, 2, 1.0, "cgroup quota", "/sys/fs/cgroup/pod/cpu.max")
    before = CpuCounts(0.0, 0.0, 0.0, None)
    assert Busy.from_counts(before, CpuCounts(10.0, 15.0, 5.0, None), cores).other_cores == pytest.approx(0.0)
    assert Busy.from_counts(before, CpuCounts(10.0, 18.0, 5.0, None), cores).other_cores == pytest.approx(0.3)
    # ... but a neighbour inside our own group takes from the quota directly.
    inside = Busy.from_counts(CpuCounts(0.0, 0.0, 0.0, 100.0), CpuCounts(10.0, 15.0, 5.0, 109.0), cores)
    assert inside.other_cores == pytest.approx(0.4)
    # Never more than the cores there were.
    assert Busy.from_counts(before, CpuCounts(10.0, 100.0, 0.0, None), Cores(2.0, 2)).other_cores == 2.0


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="reads /proc")
def test_a_child_burning_cpu_counts_as_ours_not_as_another_program() -> None:
    code = ("import time\n"
            "t = time.process_time()\n"
            "while time.process_time() - t < 0.6: pass\n")
    meter = BusyMeter().start()
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    busy = meter.stop()
    assert busy.measured and busy.own_cores * busy.seconds >= 0.55
    assert 0.0 <= busy.other_cores <= busy.cores_usable
    with pytest.raises(RuntimeError, match="before start"):
        BusyMeter().stop()
