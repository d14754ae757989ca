"""System metrics: real psutil samples and the bounded system_metrics table in real SQLite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pytest

from appliance.monitoring.system import COLUMNS, SystemMetrics, SystemSampler
from appliance.services import Services


def _cuda_loaded() -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and bool(torch.cuda.is_available())


def test_sample_has_plausible_values(services: Services) -> None:
    sampler = SystemSampler(services.settings.home)
    sum(i * i for i in range(200_000))  # some CPU time between the priming call and the sample
    sample = sampler.sample()

    table = [r["name"] for r in services.registry.query("PRAGMA table_info(system_metrics)")]
    assert list(sample) == [c for c in table if c != "id"] == list(COLUMNS)
    assert sample["sampled_at"].endswith("Z")
    cpus = psutil.cpu_count() or 1
    assert 0 <= sample["process_cpu_percent"] <= 100 * cpus
    assert 0 <= sample["machine_cpu_percent"] <= 100 * cpus
    assert sample["process_rss_bytes"] > 0
    assert 0 < sample["machine_memory_percent"] <= 100
    assert 0 <= sample["disk_used_percent"] <= 100
    assert sample["disk_free_bytes"] > 0
    assert sample["threads"] >= 1
    assert sample["open_files"] is None or sample["open_files"] >= 0
    if not _cuda_loaded():
        assert sample["gpu_memory_bytes"] is None
        assert sample["gpu_utilization_percent"] is None


def test_sample_repeats_and_measures_a_home_not_yet_created(tmp_path: Path) -> None:
    sampler = SystemSampler(tmp_path / "not" / "yet")
    first, second = sampler.sample(), sampler.sample()
    assert first["disk_free_bytes"] > 0
    assert second["sampled_at"] >= first["sampled_at"]


def test_sampler_never_imports_torch(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path\n"
        "from appliance.monitoring.system import SystemSampler\n"
        f"SystemSampler(Path({str(tmp_path)!r})).sample()\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)


def _fake_torch(utilization: Any) -> SimpleNamespace:
    def memory_allocated(device: int) -> int:
        return 100 * (device + 1)

    cuda = SimpleNamespace(
        is_available=lambda: True,
        device_count=lambda: 2,
        memory_allocated=memory_allocated,
        utilization=utilization,
    )
    return SimpleNamespace(cuda=cuda)


def test_gpu_read_from_an_already_imported_torch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch", _fake_torch(lambda: 42))
    sample = SystemSampler(tmp_path).sample()
    assert sample["gpu_memory_bytes"] == 300  # summed over both devices
    assert sample["gpu_utilization_percent"] == 42.0


def test_gpu_utilization_is_none_when_torch_cannot_read_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_nvml() -> int:
        raise ModuleNotFoundError("pynvml")

    monkeypatch.setitem(sys.modules, "torch", _fake_torch(no_nvml))
    sample = SystemSampler(tmp_path).sample()
    assert sample["gpu_memory_bytes"] == 300
    assert sample["gpu_utilization_percent"] is None


def _sample(i: int) -> dict[str, Any]:
    return {"sampled_at": f"2026-01-01T00:00:{i:02d}.000000Z", "process_cpu_percent": float(i)}


def test_empty_table(services: Services) -> None:
    metrics = SystemMetrics(services.registry)
    assert metrics.latest() is None
    assert metrics.recent() == []


def test_record_keeps_only_the_newest_max_rows(services: Services) -> None:
    metrics = SystemMetrics(services.registry, max_rows=3)
    for i in range(5):
        metrics.record(_sample(i))
    rows = services.registry.query("SELECT process_cpu_percent FROM system_metrics ORDER BY id")
    assert [r["process_cpu_percent"] for r in rows] == [2.0, 3.0, 4.0]
    latest = metrics.latest()
    assert latest is not None and latest["process_cpu_percent"] == 4.0


def test_recent_is_ordered_oldest_to_newest(services: Services) -> None:
    metrics = SystemMetrics(services.registry)
    for i in range(6):
        metrics.record(_sample(i))
    assert [r["process_cpu_percent"] for r in metrics.recent(limit=4)] == [2.0, 3.0, 4.0, 5.0]
    assert [r["sampled_at"] for r in metrics.recent()] == [
        _sample(i)["sampled_at"] for i in range(6)
    ]
    assert metrics.recent(limit=0) == []


def test_a_real_sample_round_trips(services: Services) -> None:
    metrics = SystemMetrics(services.registry)
    sample = SystemSampler(services.settings.home).sample()
    metrics.record(sample)
    latest = metrics.latest()
    assert latest is not None
    assert {k: latest[k] for k in COLUMNS} == sample


def test_missing_columns_are_null_and_sampled_at_is_filled(services: Services) -> None:
    metrics = SystemMetrics(services.registry)
    metrics.record({"threads": 3})
    latest = metrics.latest()
    assert latest is not None
    assert latest["threads"] == 3 and latest["disk_free_bytes"] is None
    assert latest["sampled_at"].endswith("Z")


def test_max_rows_must_be_positive(services: Services) -> None:
    with pytest.raises(ValueError, match="max_rows"):
        SystemMetrics(services.registry, max_rows=0)
