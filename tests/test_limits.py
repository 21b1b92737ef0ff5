"""sockserve.measure.limits: usable cores (affinity, cgroup quota) and throughput limits.

The cgroup parser runs on fixture trees shaped like /proc and /sys/fs/cgroup
on a cgroup v2 host, a cgroup v1 host and a container."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sockserve.measure.limits import (
    Cores,
    Limit,
    cgroup_cpu_quota,
    parse_cfs_quota,
    parse_cpu_max,
    throughput_limit,
    usable_cores,
)


def tree(root: Path, files: dict[str, str]) -> str:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(root)


V2_MOUNT = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
V1_MOUNTS = (
    "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
    "33 31 0:30 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
)


def test_parse_cpu_max_and_cfs_quota() -> None:
    assert parse_cpu_max("max 100000\n") is None
    assert parse_cpu_max("50000 100000\n") == 0.5
    assert parse_cpu_max("200000 100000") == 2.0
    assert parse_cpu_max("150000") == 1.5  # period defaults to 100 ms
    for bad in ("", "x 100000", "1 2 3", "0 100000", "-5 100000"):
        with pytest.raises(ValueError):
            parse_cpu_max(bad)
    assert parse_cfs_quota("-1\n", "100000\n") is None
    assert parse_cfs_quota("100000", "100000") == 1.0
    assert parse_cfs_quota("25000", "50000") == 0.5
    with pytest.raises(ValueError):
        parse_cfs_quota("abc", "100000")


def test_cgroup_v2_quota_of_a_binder_like_pod(tmp_path: Path) -> None:
    root = tree(tmp_path, {
        "proc/self/cgroup": "0::/kubepods/pod42/box\n",
        "proc/self/mountinfo": V2_MOUNT,
        "sys/fs/cgroup/cpu.max": "max 100000\n",
        "sys/fs/cgroup/kubepods/cpu.max": "max 100000\n",
        "sys/fs/cgroup/kubepods/pod42/cpu.max": "100000 100000\n",  # the pod: 1 core
        "sys/fs/cgroup/kubepods/pod42/box/cpu.max": "max 100000\n",
    })
    quota, where = cgroup_cpu_quota(root)
    assert quota == 1.0
    assert where == "/sys/fs/cgroup/kubepods/pod42/cpu.max"


def test_the_smallest_quota_up_the_hierarchy_binds(tmp_path: Path) -> None:
    root = tree(tmp_path, {
        "proc/self/cgroup": "0::/a/b\n",
        "proc/self/mountinfo": V2_MOUNT,
        "sys/fs/cgroup/a/cpu.max": "50000 100000\n",
        "sys/fs/cgroup/a/b/cpu.max": "300000 100000\n",
    })
    assert cgroup_cpu_quota(root)[0] == 0.5


def test_cgroup_v1_cfs_quota(tmp_path: Path) -> None:
    root = tree(tmp_path, {
        "proc/self/cgroup": "4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n0::/\n",
        "proc/self/mountinfo": V1_MOUNTS,
        "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
        "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
        "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "150000\n",
        "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
    })
    quota, where = cgroup_cpu_quota(root)
    assert quota == 1.5
    assert where.endswith("docker/abc/cpu.cfs_quota_us")


def test_a_container_sees_its_own_group_at_the_mount_root(tmp_path: Path) -> None:
    # Inside a cgroup namespace: the group is "/" and the mount's root is
    # the container's own group; the quota sits at the mount point itself.
    root = tree(tmp_path, {
        "proc/self/cgroup": "0::/\n",
        "proc/self/mountinfo": "40 30 0:26 /kubepods/pod7 /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n",
        "sys/fs/cgroup/cpu.max": "200000 100000\n",
    })
    assert cgroup_cpu_quota(root)[0] == 2.0
    # The same, seen from a process whose group path repeats the mount root.
    tree(tmp_path, {"proc/self/cgroup": "0::/kubepods/pod7\n"})
    assert cgroup_cpu_quota(root)[0] == 2.0


def test_no_quota_missing_or_malformed_files(tmp_path: Path) -> None:
    assert cgroup_cpu_quota(str(tmp_path)) == (None, "")  # nothing there at all
    root = tree(tmp_path, {
        "proc/self/cgroup": "0::/x\n",
        "proc/self/mountinfo": V2_MOUNT,
        "sys/fs/cgroup/x/cpu.max": "garbage\n",
    })
    assert cgroup_cpu_quota(root) == (None, "")
    # Without mountinfo, the usual place is read.
    other = tree(tmp_path / "plain", {"sys/fs/cgroup/cpu.max": "50000 100000\n"})
    assert cgroup_cpu_quota(other)[0] == 0.5


def test_usable_cores_takes_the_smaller_of_affinity_and_quota(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    half = tree(tmp_path / "half", {"proc/self/cgroup": "0::/\n", "proc/self/mountinfo": V2_MOUNT,
                                    "sys/fs/cgroup/cpu.max": "50000 100000\n"})
    cores = usable_cores(root=half)
    assert cores == Cores(0.5, affinity, 0.5, "cgroup quota", "/sys/fs/cgroup/cpu.max")
    assert cores.describe() == "0.5 core (cgroup quota)"
    assert Cores.from_dict(cores.to_dict()) == cores
    big = tree(tmp_path / "big", {"proc/self/cgroup": "0::/", "proc/self/mountinfo": V2_MOUNT,
                                  "sys/fs/cgroup/cpu.max": "6400000 100000"})
    assert usable_cores(root=big).usable == affinity
    assert usable_cores(root=big).source == "affinity"
    # The real machine: what taskset or the container allows.
    assert 0 < usable_cores().usable <= affinity


def test_throughput_limits_name_the_bound_that_binds() -> None:
    # One core, 10 ms of CPU each: 100 per second for every kind.
    for kind in ("plain", "threading", "forking", "asyncio"):
        assert throughput_limit(kind, 1.0, 10.0, clients=8).rps == pytest.approx(100.0)
    # Four cores: processes may use them all, a one-process server one (the GIL).
    assert throughput_limit("forking", 4.0, 10.0, clients=8).rps == pytest.approx(400.0)
    threading = throughput_limit("threading", 4.0, 10.0, clients=8)
    assert threading.rps == pytest.approx(100.0) and "GIL" in threading.reason
    assert throughput_limit("threading", 4.0, 10.0, clients=8, gil=False).rps == pytest.approx(400.0)
    # Waiting costs no CPU: the clients and one-at-a-time bound it.
    plain_io = throughput_limit("plain", 1.0, 0.0, wait_ms=10.0, clients=8)
    assert plain_io.rps == pytest.approx(100.0) and "one request at a time" in plain_io.reason
    assert throughput_limit("forking", 1.0, 0.0, wait_ms=10.0, clients=8).rps == pytest.approx(800.0)
    assert throughput_limit("forking", 8.0, 0.0, rate=50.0).rps == 50.0
    assert throughput_limit("forking", 8.0).rps is None  # echo: nothing known


def test_limit_tolerance() -> None:
    limit = Limit(100.0, "1 core at 10 ms of CPU per request")
    assert not limit.exceeded_by(104.9) and limit.exceeded_by(105.1)
    assert not Limit(None, "no bound known").exceeded_by(1e9)
