"""System metrics: psutil samples of this process and the machine, kept in a bounded table.

A sampler is cheap to call on a timer: CPU percents use psutil's non-blocking form (the time
since the previous call), and the GPU is read only when torch is already loaded by the process
(or through NVML when it is installed), so sampling never pays for importing torch.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil
import sqlite_utils

from appliance.registry import Registry, utcnow

# The columns of system_metrics other than id, in table order.
COLUMNS: tuple[str, ...] = (
    "sampled_at",
    "process_cpu_percent",
    "machine_cpu_percent",
    "process_rss_bytes",
    "machine_memory_percent",
    "disk_used_percent",
    "disk_free_bytes",
    "open_files",
    "threads",
    "gpu_memory_bytes",
    "gpu_utilization_percent",
)


class SystemSampler:
    """psutil samples of this process and the machine."""

    def __init__(self, disk_path: Path):
        self.disk_path = disk_path
        # One Process object: psutil keeps the previous CPU times on it for interval=None.
        self._process = psutil.Process()
        # Prime both CPU counters so the first sample() measures the time since construction
        # instead of returning a meaningless 0.0.
        self._process.cpu_percent(interval=None)
        psutil.cpu_percent(interval=None)
        self._nvml_ready: bool | None = None

    def sample(self) -> dict[str, Any]:
        """One reading; keys are the system_metrics columns other than id."""
        proc = self._process
        with proc.oneshot():
            process_cpu = proc.cpu_percent(interval=None)
            rss = proc.memory_info().rss
            threads = proc.num_threads()
            open_files = self._open_files()
        disk = psutil.disk_usage(str(_existing(self.disk_path)))
        gpu_memory, gpu_utilization = self._gpu()
        return {
            "sampled_at": utcnow(),
            "process_cpu_percent": process_cpu,
            "machine_cpu_percent": psutil.cpu_percent(interval=None),
            "process_rss_bytes": rss,
            "machine_memory_percent": psutil.virtual_memory().percent,
            "disk_used_percent": disk.percent,
            "disk_free_bytes": disk.free,
            "open_files": open_files,
            "threads": threads,
            "gpu_memory_bytes": gpu_memory,
            "gpu_utilization_percent": gpu_utilization,
        }

    def _open_files(self) -> int | None:
        try:
            return len(self._process.open_files())
        except psutil.AccessDenied:
            pass
        try:
            return self._process.num_fds()
        except (psutil.Error, AttributeError):  # num_fds does not exist on Windows
            return None

    def _gpu(self) -> tuple[int | None, float | None]:
        torch = sys.modules.get("torch")
        if torch is not None:
            try:
                available = bool(torch.cuda.is_available())
            except Exception:
                available = False
            if available:
                return _torch_gpu(torch)
        return self._nvml_gpu()

    def _nvml_gpu(self) -> tuple[int | None, float | None]:
        if self._nvml_ready is False:
            return None, None
        try:
            import pynvml  # optional; not a dependency
        except ImportError:
            self._nvml_ready = False
            return None, None
        try:
            if self._nvml_ready is None:
                pynvml.nvmlInit()
                self._nvml_ready = True
            handles = [
                pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())
            ]
            if not handles:
                return None, None
            # NVML reports the whole device, not just this process.
            memory = sum(int(pynvml.nvmlDeviceGetMemoryInfo(h).used) for h in handles)
            rates = [float(pynvml.nvmlDeviceGetUtilizationRates(h).gpu) for h in handles]
            return memory, sum(rates) / len(rates)
        except Exception:
            # No driver or no device: stop trying rather than fail on every sample.
            self._nvml_ready = False
            return None, None


def _torch_gpu(torch: Any) -> tuple[int | None, float | None]:
    try:
        count = int(torch.cuda.device_count())
        memory: int | None = sum(int(torch.cuda.memory_allocated(i)) for i in range(count))
    except Exception:
        memory = None
    try:
        # Needs pynvml (or amdsmi) underneath; without it torch raises.
        utilization: float | None = float(torch.cuda.utilization())
    except Exception:
        utilization = None
    return memory, utilization


def _existing(path: Path) -> Path:
    """`path` or its nearest existing parent, so a home not yet created can still be measured."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return path


class SystemMetrics:
    """The bounded system_metrics table."""

    def __init__(self, registry: Registry, max_rows: int = 10_080):
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, not {max_rows}")
        self.registry = registry
        self.max_rows = max_rows

    def record(self, sample: Mapping[str, Any]) -> None:
        """Insert `sample` and drop the oldest rows beyond max_rows, in one transaction."""
        values = [_storable(sample.get(column)) for column in COLUMNS]
        if values[0] is None:
            values[0] = utcnow()
        max_rows = self.max_rows

        def job(db: sqlite_utils.Database) -> None:
            db.execute(
                f"INSERT INTO system_metrics ({', '.join(COLUMNS)})"
                f" VALUES ({', '.join('?' for _ in COLUMNS)})",
                values,
            )
            # ids are AUTOINCREMENT, so id order is insertion order: keep the newest max_rows.
            db.execute(
                "DELETE FROM system_metrics WHERE id <= ("
                " SELECT id FROM system_metrics ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (max_rows,),
            )

        self.registry.write(job, durable=False)  # samples: one lost in a power cut is no lie

    def recent(self, limit: int = 60) -> list[dict[str, Any]]:
        """The newest `limit` samples, oldest first (the order a chart draws them)."""
        return self.registry.query(
            "SELECT * FROM (SELECT * FROM system_metrics ORDER BY id DESC LIMIT ?) ORDER BY id",
            (max(0, limit),),
        )

    def latest(self) -> dict[str, Any] | None:
        rows = self.registry.query("SELECT * FROM system_metrics ORDER BY id DESC LIMIT 1")
        return rows[0] if rows else None


def _storable(value: Any) -> Any:
    # SQLite stores NaN as NULL anyway; make that explicit so reads agree with writes.
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
