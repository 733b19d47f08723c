"""GPU facts as the runner reports them, read through NVML's API (a stand-in NVML here, since
this machine has no GPU; the real one answers the same calls)."""

from __future__ import annotations

from types import SimpleNamespace

from adapter import hardware


class StandInNVML:
    """Two GPUs answering the pynvml calls the adapter makes."""

    def __init__(self, fail_on_count: bool = False) -> None:
        self.fail_on_count = fail_on_count
        self.shut_down = False

    def nvmlDeviceGetCount(self):
        if self.fail_on_count:
            raise RuntimeError("NVML_ERROR_GPU_IS_LOST")
        return 2

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetUUID(self, handle):
        return f"GPU-{handle}".encode()  # older pynvml answers bytes

    def nvmlDeviceGetName(self, handle):
        return "NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetMemoryInfo(self, handle):
        return SimpleNamespace(total=85_520_809_984, free=80_000_000_000 - handle)

    def nvmlDeviceGetCudaComputeCapability(self, handle):
        return (9, 0)

    def nvmlDeviceGetUtilizationRates(self, handle):
        return SimpleNamespace(gpu=97, memory=41 + handle)

    def nvmlShutdown(self):
        self.shut_down = True


def test_compute_info_and_stats_per_gpu(monkeypatch):
    nvml = StandInNVML()
    monkeypatch.setattr(hardware, "_nvml", lambda: nvml)
    info = {i: g.model_dump() for i, g in hardware.gpu_compute_info().items()}
    assert info == {
        i: {
            "id": f"GPU-{i}",
            "name": "NVIDIA H100 80GB HBM3",
            "memory_total": 85_520_809_984,
            "memory_free": 80_000_000_000 - i,
            "major": 9,
            "minor": 0,
        }
        for i in (0, 1)
    }
    stats = hardware.gpu_utilization_stats()
    assert (stats[1].utilization_compute, stats[1].utilization_memory) == (97, 42)
    assert nvml.shut_down


def test_an_nvml_failure_gives_the_empty_map(monkeypatch):
    nvml = StandInNVML(fail_on_count=True)
    monkeypatch.setattr(hardware, "_nvml", lambda: nvml)
    assert hardware.gpu_compute_info() == {}
    assert hardware.gpu_utilization_stats() == {}
    assert nvml.shut_down
