"""disk/du's pure parts: reading `du`, quotas, and the limitation's wording."""

from __future__ import annotations

from mesos_agent.containerizer.disk import disk_limitation, format_bytes, parse_du, quota_bytes
from mesos_values.resources import Resources
from protos import mesos_pb2

MB = 1024 * 1024


def test_du_reports_kibibytes() -> None:
    assert parse_du("2048\t/work/slaves/a/runs/c\n") == 2 * MB
    assert parse_du("") is None
    assert parse_du("du: cannot access\n") is None


def test_the_quota_is_the_disk_resource_and_none_without_one() -> None:
    assert quota_bytes(Resources.parse("cpus:1;disk:10")) == 10 * MB
    assert quota_bytes(Resources.parse("cpus:1;mem:32")) is None


def test_usage_over_the_quota_is_a_disk_limitation_with_both_sizes() -> None:
    assert disk_limitation(10 * MB, 10 * MB) is None
    assert disk_limitation(10 * MB, None) is None
    limitation = disk_limitation(12 * MB + 512 * 1024, 10 * MB)
    assert limitation is not None
    assert limitation.reason == mesos_pb2.TaskStatus.REASON_CONTAINER_LIMITATION_DISK
    assert limitation.message == "Disk usage (12800KB) exceeds quota (10MB)"


def test_sizes_are_worded_in_the_largest_unit_that_divides_them() -> None:
    assert [format_bytes(n) for n in (0, 512, 4096, 3 * MB, 2 * 1024 * MB, MB + 1)] == [
        "0B", "512B", "4KB", "3MB", "2GB", f"{MB + 1}B"]
