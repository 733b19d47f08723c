"""Constants shared by the harness's paths, importable without torch (the cold-start child
of the stock path imports nothing of ours but this)."""

PROMPT = "a lighthouse on a cliff at dusk, waves, volumetric light, highly detailed"
