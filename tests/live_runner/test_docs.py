"""The runners.json of docs/live-runner.md is what the command prints for its aiModels.json."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.live_runner.support import assert_valid, run

DOC = Path(__file__).resolve().parents[2] / "docs" / "live-runner.md"


def example(name: str) -> str:
    match = re.search(
        rf"<!-- live-runner-example: {re.escape(name)} -->\n```json\n(.*?)```",
        DOC.read_text(),
        re.S,
    )
    assert match, f"no {name} example in {DOC}"
    return match.group(1)


def test_the_documented_runners_json(tmp_path, monkeypatch, capsys):
    models = tmp_path / "aiModels.json"
    models.write_text(example("aiModels.json"))
    code, out, err = run(
        monkeypatch,
        capsys,
        ADAPTER_BACKEND="modal",
        ADAPTER_MODELS_CONFIG=str(models),
        ADAPTER_PUBLIC_URL="http://adapter:8935",
        ADAPTER_LIVE_RUNNER_PATH_SECRET="CHANGE-ME-to-a-long-random-secret",
    )
    assert code == 0, err
    printed, documented = json.loads(out), json.loads(example("runners.json"))
    for document in (printed, documented):
        for entry in document["runners"]:
            entry.pop("version")
    assert printed == documented
    assert_valid(documented)
