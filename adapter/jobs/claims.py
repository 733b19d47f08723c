"""Which models a job runner may claim a job of now, and its own claimed jobs counted.

A job is claimed only when its model has a slot free: none taken by a request (the runner
routes share the slots), a request waiting for one, or a job claimed here. A job claimed here
counts against its model's slot from its claim to its end, except while it holds the slot
itself (the limiter counts it then): so a job never shows `running` while it merely waits for
a slot, and the next job of its model is claimed only once the last one's end is saved.
"""

from __future__ import annotations

from collections import Counter

from adapter.service import RunnerService


class ClaimedJob:
    """One claimed job's count against its model (model key `key`, "" when not served)."""

    def __init__(self, counts: Counter[str], key: str) -> None:
        self._counts, self._key = counts, key
        self._counted = self._ended = False
        self.count()

    def count(self) -> None:
        """Counted here: claimed, before it holds its slot or after it let it go."""
        if not self._counted and not self._ended and self._key:
            self._counted = True
            self._counts[self._key] += 1

    def end(self) -> None:
        """The job's end is saved (or it was given back): never counted again."""
        self._ended = True
        self.uncount()

    def uncount(self) -> None:
        """In its slot (the limiter counts it)."""
        if self._counted:
            self._counted = False
            self._counts[self._key] -= 1


class Claims:
    def __init__(self, service: RunnerService) -> None:
        self.service = service
        self.counts: Counter[str] = Counter()  # model key -> jobs counted here

    def free_models(self) -> dict[tuple[str, str], str]:
        """(pipeline, model_id) -> model key, of the models with a slot free now."""
        free = {}
        for model in self.service.models:
            limiter = self.service.limiters[model.key]
            taken = limiter.in_flight + limiter.queued + self.counts[model.key]
            if taken < limiter.max_in_flight:
                free[(model.pipeline.value, model.model_id)] = model.key
        return free

    def claimed(self, key: str) -> ClaimedJob:
        return ClaimedJob(self.counts, key)
