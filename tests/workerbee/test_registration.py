"""The registration's facts against what the machine reports, in the units the dispatcher
reads; the GPU fields against a stand-in NVML and Modal's GPU table; the signature."""

from __future__ import annotations

import base64
import os
import shutil
from dataclasses import dataclass
from types import SimpleNamespace
from typing import ClassVar

import coincurve
import pytest

from adapter.service import RunnerService
from adapter.settings import WorkerbeeSettings
from adapter.workerbee.gpus import MIB, serving_gpu_selectors
from adapter.workerbee.registration import free_disk_mb, registration
from adapter.workerbee.signing import registration_digest, verify
from adapter.workerbee.worker import WorkerBee, backoff_delay
from contract.aimodels import merge_entries, parse_entries
from contract.errors import ConfigError
from tests.support.apps import make_settings
from tests.support.fake_backend import FakeBackend
from tests.workerbee.dispatcher import FIELD_TYPES, meminfo_available, queen_would_pick


def entries(**modal: str) -> list[dict]:
    def entry(pipeline: str, model_id: str) -> dict:
        runner = {
            "model_path": "/nowhere",
            **({"modal": {"gpu": modal[model_id]}} if model_id in modal else {}),
        }
        return {"pipeline": pipeline, "model_id": model_id, "warm": False, "runner": runner}

    return [
        entry("llm", "org/chat-7b"),
        entry("text-to-image", "org/sdxl"),
        entry("audio-to-text", "org/whisper"),
    ]


def service_for(tmp_path, entry_list: list[dict] | None = None, **settings) -> RunnerService:
    bee = WorkerbeeSettings(
        url="ws://127.0.0.1:1/worker",
        ln_address="me@getalby.com",
        auth_key="key",
        **settings.pop("workerbee", {}),
    )
    device = settings.pop("device", "cpu")
    config = make_settings(tmp_path, workerbee=bee, **settings).model_copy(
        update={"device": device}
    )
    models = merge_entries(parse_entries(entries() if entry_list is None else entry_list))
    return RunnerService(config, models, FakeBackend())


def test_the_registration_reports_this_machine_in_the_dispatchers_units(tmp_path):
    service = service_for(tmp_path)
    message = registration(service.settings, service)
    assert set(message) == set(FIELD_TYPES)
    for name, kind in FIELD_TYPES.items():
        assert isinstance(message[name], kind), (name, message[name])
    assert message["cpu_count"] == len(os.sched_getaffinity(0)) <= (os.cpu_count() or 0)
    # disk_space in MB (MiB), where the models live: MODEL_DIR does not exist yet, so the
    # nearest existing parent's file system.
    assert not service.settings.model_dir.exists()
    expected_disk = shutil.disk_usage(tmp_path).free // MIB
    assert abs(message["disk_space"] - expected_disk) < 256
    # vram: free host memory in BYTES (what the dispatcher compares with size x 7.5e7).
    assert abs(message["vram"] - meminfo_available()) < 512 * MIB
    psutil = pytest.importorskip("psutil")
    assert abs(message["vram"] - psutil.virtual_memory().available) < 512 * MIB
    # The CPU serves here: no GPU is reported, and none is invented.
    assert (message["nv_gpus"], message["nv_gpu_count"], message["nv_driver_version"]) == (
        [],
        0,
        None,
    )
    assert message["capabilities"] == ["llama-infer", "sdxl"]
    assert message["models"] == ["org/chat-7b", "org/sdxl"]
    assert message["ln_url"] == message["ln_address"] == "me@getalby.com"
    assert (message["pubkey"], message["sig"]) == ("", "")  # no key configured: unsigned


def test_free_disk_is_measured_where_asked(tmp_path):
    assert abs(free_disk_mb(tmp_path / "a" / "b") - shutil.disk_usage(tmp_path).free // MIB) < 256
    service = service_for(tmp_path, workerbee={"disk_path": tmp_path})
    assert (
        abs(
            registration(service.settings, service)["disk_space"]
            - shutil.disk_usage(tmp_path).free // MIB
        )
        < 256
    )


@dataclass
class FakeMemory:
    total: int
    free: int
    used: int


class StandInNVML(SimpleNamespace):
    """What nvidia-ml-py's pynvml answers (its function names), for two GPUs."""

    NVML_CLOCK_GRAPHICS = 0
    GPUS: ClassVar[list[tuple[str, str, int, int]]] = [
        ("NVIDIA H100 80GB HBM3", "GPU-aaaa", 85_520_809_984, 1980),
        ("NVIDIA L40S", "GPU-bbbb", 48_305_799_168, 2520),
    ]

    def __init__(self) -> None:
        super().__init__(initialised=0, shut_down=0)

    def nvmlInit(self) -> None:
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self.shut_down += 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.GPUS)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> int:
        return next(i for i, gpu in enumerate(self.GPUS) if gpu[1] == uuid)

    def nvmlDeviceGetName(self, handle: int) -> str:
        return self.GPUS[handle][0]

    def nvmlDeviceGetUUID(self, handle: int) -> bytes:
        return self.GPUS[handle][1].encode()

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> FakeMemory:
        total = self.GPUS[handle][2]
        return FakeMemory(total=total, free=total // 2, used=total - total // 2)

    def nvmlDeviceGetMaxClockInfo(self, handle: int, clock: int) -> int:
        assert clock == self.NVML_CLOCK_GRAPHICS
        return self.GPUS[handle][3]

    def nvmlSystemGetDriverVersion(self) -> str:
        return "570.86.15"


def test_gpu_fields_come_from_nvml_for_the_gpu_that_serves(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    nvml = StandInNVML()
    service = service_for(tmp_path, device="cuda:1")
    message = registration(service.settings, service, nvml)
    assert message["nv_gpus"] == [
        {
            "name": "NVIDIA L40S",
            "uuid": "GPU-bbbb",
            "memory": 48_305_799_168 // MIB,
            "clock": 2520,
            "clock_unit": "MHz",
        }
    ]
    assert (message["nv_gpu_count"], message["nv_driver_version"]) == (1, "570.86.15")
    assert nvml.shut_down == 1
    # `auto` serves on CUDA's device 0; CUDA_VISIBLE_DEVICES renumbers CUDA's devices.
    auto = service_for(tmp_path, device="auto")
    assert registration(auto.settings, auto, StandInNVML())["nv_gpus"][0]["uuid"] == "GPU-aaaa"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-bbbb")
    assert registration(auto.settings, auto, StandInNVML())["nv_gpus"][0]["uuid"] == "GPU-bbbb"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert registration(auto.settings, auto, StandInNVML())["nv_gpus"][0]["memory"] == (
        48_305_799_168 // MIB
    )


def test_the_units_are_the_ones_the_dispatcher_picks_by(tmp_path, monkeypatch):
    """queenbee's own rule: summed GPU memory (MB), vram (bytes) and disk (MB) over what the
    model's size needs. A registration in the protocol page's units (GB, MB) never passes."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    service = service_for(tmp_path, device="cuda:0")
    message = registration(service.settings, service, StandInNVML())
    size = 7  # billion parameters, "org/chat-7b"
    if message["vram"] < size * 1e8 or message["disk_space"] < size * 1500:
        pytest.skip("this machine has too little free memory or disk for the example")
    assert queen_would_pick(message, size)
    as_the_page_says = {
        **message,
        "disk_space": message["disk_space"] // 1024,
        "vram": message["vram"] // MIB,
    }
    assert not queen_would_pick(as_the_page_says, size)
    assert not queen_would_pick({**message, "nv_gpus": []}, size)


def test_modal_reports_the_gpu_types_of_its_classes(tmp_path):
    listed = entries(**{"org/chat-7b": "H100:2", "org/sdxl": "l40s", "org/whisper": "T4"})
    service = service_for(tmp_path, listed, backend="modal")
    message = registration(service.settings, service)
    # Audio-to-text is no dispatcher job: its T4 is not among the GPUs that answer.
    assert [(g["name"], g["memory"]) for g in message["nv_gpus"]] == [
        ("H100", 80_000),
        ("H100", 80_000),
        ("L40S", 48_000),
    ]
    assert message["nv_gpu_count"] == 3
    unknown = service_for(tmp_path, entries(**{"org/chat-7b": "Z9000"}), backend="modal")
    assert registration(unknown.settings, unknown)["nv_gpus"] == [
        {"name": "L40S", "uuid": None, "memory": 48_000, "clock": None, "clock_unit": None}
    ]


def test_the_http_backend_reports_no_gpu(tmp_path):
    service = service_for(tmp_path, backend="http")
    assert registration(service.settings, service)["nv_gpus"] == []


def test_a_configured_key_signs_the_registration(tmp_path):
    secret = bytes(range(1, 33))
    key = base64.urlsafe_b64encode(secret).decode()
    service = service_for(tmp_path, workerbee={"private_key": key})
    message = registration(service.settings, service)
    expected_pubkey = coincurve.PrivateKey(secret).public_key_xonly.format()
    assert base64.urlsafe_b64decode(message["pubkey"]) == expected_pubkey
    # BIP-340 over the SHA-256 of the sorted compact JSON without `sig`, as a dispatcher checks.
    signature = base64.urlsafe_b64decode(message["sig"])
    assert coincurve.PublicKeyXOnly(expected_pubkey).verify(signature, registration_digest(message))
    assert verify(message)
    assert not verify({**message, "vram": message["vram"] + 1})


@pytest.mark.parametrize(
    "key",
    [
        "not base64!",
        base64.urlsafe_b64encode(b"short").decode(),
        base64.urlsafe_b64encode(bytes(32)).decode(),
    ],
)
def test_a_bad_private_key_stops_the_start(tmp_path, key):
    service = service_for(tmp_path, workerbee={"private_key": key})
    with pytest.raises(ConfigError, match="ADAPTER_WORKERBEE_PRIVATE_KEY"):
        WorkerBee(service.settings, service)


def test_advertised_capabilities_and_models_can_be_set(tmp_path):
    service = service_for(
        tmp_path,
        workerbee={
            "capabilities": "llama-infer, fast-embed",
            "models": "TheBloke/x-7B-GGUF:Q4_K_M",
        },
    )
    message = registration(service.settings, service)
    assert message["capabilities"] == ["llama-infer", "fast-embed"]
    assert message["models"] == ["TheBloke/x-7B-GGUF:Q4_K_M"]


def test_gpu_selectors():
    assert serving_gpu_selectors("cpu", None) == []
    assert serving_gpu_selectors("auto", None) == [0]
    assert serving_gpu_selectors("cuda:2", "") == [2]
    assert serving_gpu_selectors("cuda:1", "3,5") == [5]
    assert serving_gpu_selectors("cuda:4", "3,5") == []


def test_backoff_grows_to_its_bound_with_jitter():
    for rng in (lambda: 0.0, lambda: 0.999):
        delays = [backoff_delay(attempt, 0.5, 8.0, rng) for attempt in range(12)]
        assert all(0.25 <= delay <= 8.0 for delay in delays)
        assert delays[-1] >= 4.0  # capped at 8, less at most half of it for jitter
    assert backoff_delay(3, 0.5, 8.0, lambda: 0.0) == 2.0  # 0.5 x 2^3 = 4, half of it
    assert backoff_delay(3, 0.5, 8.0, lambda: 1.0) == 4.0
