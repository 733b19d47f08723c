"""Model families recognised from the model id, as Livepeer's runner recognises them.

Torch-free, so the adapter can check its configuration without loading the inference stack.
"""

from __future__ import annotations

import re

# The runner's rules (`is_lightning_model`, `is_turbo_model`): a '-' or '_' before the word, in
# any case. A bare trailing "lightning" (e.g. "sdxllightning") counts too.
_LIGHTNING = re.compile(r"[-_]lightning|lightning$", re.IGNORECASE)
_TURBO = re.compile(r"[-_]turbo", re.IGNORECASE)
_STEPS = re.compile(r"(\d+)[-_]?step", re.IGNORECASE)


def is_lightning(model_id: str) -> bool:
    """SDXL-Lightning and its fine-tunes: distilled for a fixed, small number of steps."""
    return _LIGHTNING.search(model_id) is not None


def is_turbo(model_id: str) -> bool:
    """SD-Turbo / SDXL-Turbo and fine-tunes: distilled for one to four steps."""
    return _TURBO.search(model_id) is not None


def is_few_step_distilled(model_id: str) -> bool:
    """Turbo or Lightning: the models whose few steps leave nothing for DeepCache to reuse."""
    return is_lightning(model_id) or is_turbo(model_id)


def lightning_steps(model_id: str, default: int = 4) -> int:
    """The step count a Lightning id names ("...-2step"), else `default`."""
    match = _STEPS.search(model_id)
    return int(match.group(1)) if match else default
