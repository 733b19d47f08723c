"""One GPU class of the Modal deployment as plain data (`modal_deploy/plan.py` builds them)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contract.aimodels import ServedModel
from contract.modal_settings import MAX_TIMEOUT_S, WarmWindow
from modal_deploy.settings import MODELS_JSON_ENV, REVISIONS_ENV
from modal_deploy.weights import pinned_model, revisions_json

CALL_WAIT_MARGIN_S = 60
QUEUE_PARTITION_MAX_TTL_S = 24 * 3600  # modal.Queue's default and largest partition_ttl


@dataclass(frozen=True)
class ClassPlan:
    """One GPU class: the warm pool of one (pipeline, model)."""

    name: str
    model: ServedModel
    gpu: str | tuple[str, ...]
    min_containers: int
    max_containers: int
    buffer_containers: int | None
    scaledown_window: int
    max_concurrent_inputs: int
    run_timeout: int  # the longest run of one request (`runner.modal.timeout`)
    startup_timeout: int
    snapshot: str
    warm_schedule: tuple[WarmWindow, ...] = ()
    # What the class is defined from, and nothing else of the file: its own entries (as the
    # deploy gives them, without go-livepeer's url, prices and token) and the pinned commit of
    # each repo it loads. Editing another model, or re-downloading another's weights, leaves
    # this class's definition byte-identical: its warm pool and snapshot survive the deploy.
    entries_json: str = "[]"
    revisions: tuple[tuple[str, str], ...] = ()

    def cls_options(self) -> dict[str, Any]:
        """The keyword arguments of `app.cls` that come from the configuration."""
        options: dict[str, Any] = {
            "gpu": list(self.gpu) if isinstance(self.gpu, tuple) else self.gpu,
            "min_containers": self.min_containers,
            "max_containers": self.max_containers,
            "scaledown_window": self.scaledown_window,
            "timeout": self.timeout,
            "startup_timeout": self.startup_timeout,
            "enable_memory_snapshot": self.snapshot != "off",
        }
        if self.buffer_containers is not None:
            options["buffer_containers"] = self.buffer_containers
        if self.snapshot == "gpu":
            options["experimental_options"] = {"enable_gpu_snapshot": True}
        return options

    @property
    def timeout(self) -> int:
        """The class's Modal `timeout`, which counts per input from its arrival in the
        container: the inputs of a container run one after another on its one model thread,
        so the last of `max_concurrent_inputs` waits for the others' runs before its own (the
        worker bounds each run by `run_timeout`, from when it reaches the model)."""
        return min(self.run_timeout * self.max_concurrent_inputs, MAX_TIMEOUT_S)

    def concurrency_options(self) -> dict[str, Any]:
        """The keyword arguments of the class's `@modal.concurrent`: up to
        `max_concurrent_inputs` queue in a container, but Modal's autoscaler aims at one per
        container (`target_inputs`), the most its one model thread serves at once; it starts
        another container (up to `max_containers`) before queueing."""
        return {"max_inputs": self.max_concurrent_inputs, "target_inputs": 1}

    @property
    def env(self) -> dict[str, str]:
        """The class's own environment: weights from the Volume only (the worker's settings
        name it: `gpu_settings`), its entries and its pinned revisions, from which its
        container defines it again."""
        return {
            "HF_HUB_OFFLINE": "1",
            MODELS_JSON_ENV: self.entries_json,
            REVISIONS_ENV: revisions_json(dict(self.revisions)),
        }

    @property
    def served_model(self) -> ServedModel:
        """The model as the class loads it: from its pinned snapshot folders, when pinned."""
        return pinned_model(self.model, self.revisions)

    @property
    def call_wait_s(self) -> int:
        """How long the adapter waits for a result before giving up (and cancelling)."""
        return self.startup_timeout + self.timeout + CALL_WAIT_MARGIN_S

    @property
    def stream_ttl_s(self) -> int:
        """The `partition_ttl` of a streamed request's Queue partition: as long as the adapter
        waits, within Modal's most (a day; `modal.Queue.put_many` takes only lower ones)."""
        return min(self.call_wait_s, QUEUE_PARTITION_MAX_TTL_S)

    def min_containers_at(self, when: datetime) -> int:
        """Warm containers wanted at `when` (UTC): the schedule's window, else the static value."""
        if not self.warm_schedule:
            return self.min_containers
        hour = when.hour
        return max((w.min_containers for w in self.warm_schedule if hour in w.hours), default=0)

    @property
    def failed_key(self) -> str:
        """This class's key in the failed-marks Dict (`failed_marks_name`): its name and the
        identity of its definition (its own entries and pinned revisions), so a redeploy with
        new weights or an edited entry is a new key, tried afresh."""
        identity = f"{self.entries_json}\n{revisions_json(dict(self.revisions))}"
        return f"{self.name}@{hashlib.sha1(identity.encode()).hexdigest()[:12]}"
