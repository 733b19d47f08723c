"""What each Modal function is defined from, checked as Modal's container checks it: the
dependencies a deploy records are the ones the container finds (same count, same kind and
name at each position), each GPU class depends on its own aiModels.json entry and pinned
revisions only, and the deploy warns where it would cost or mislead."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest

from contract.errors import ConfigError
from functions.download import REVISIONS_FILE, read_revisions, record_revision
from functions.loading import resolve_model_path
from modal_deploy.settings import MODELS_JSON_ENV, REVISIONS_ENV, read_deploy_revisions
from modal_deploy.weights import snapshot_folder
from tests.support.modal_inprocess import (
    container_import,
    dependency_mismatch,
    deploy_dependencies,
    import_modal_app,
)

NOON = datetime(2026, 12, 1, 12, tzinfo=UTC)
SHA_A = "a" * 40
SHA_B = "b" * 40
SHA_B2 = "c" * 40


def entry(model_id: str, **modal: object) -> dict[str, object]:
    return {
        "pipeline": "text-to-image",
        "model_id": model_id,
        "warm": False,
        "capacity": 1,
        "url": "https://x--livepeer-ai-runner.modal.run",
        "token": "t0ken",
        "price_per_unit": 1e-8,
        "runner": {"modal": {"gpu": "L4", **modal}},
    }


ENTRIES = [
    entry("org/a"),
    entry("org/b", warm_schedule=[{"hours_utc": "8-20"}]),
    entry("org/c", snapshot="off"),
]
A, B, C = "TextToImage__org_a", "TextToImage__org_b", "TextToImage__org_c"


def deploy(
    tmp_path: Path, entries: list[dict[str, object]], revisions: dict[str, str] | None = None
) -> ModuleType:
    """modal_app.py imported by `modal deploy` for `entries`, the Volume's manifest holding
    `revisions` (given as the container variable: the deploy reads it from there first)."""
    path = tmp_path / f"aiModels-{len(list(tmp_path.iterdir()))}.json"
    path.write_text(json.dumps(entries))
    manifest = json.dumps(revisions or {})
    return import_modal_app({"ADAPTER_MODELS_CONFIG": str(path), REVISIONS_ENV: manifest})


def class_definition(app: ModuleType, name: str) -> str:
    """Everything a class is defined from, as text: its options (environment included), what
    Modal records of it and its dependencies."""
    plan = next(p for p in app.PLAN.classes if p.name == name)
    options = app.PLAN.gpu_class_options(plan)
    info = app.GPU_CLASSES[name]().run.info()
    deps = [repr(dep) for dep in deploy_dependencies(app.GPU_CLASSES[name])]
    return json.dumps([options, repr(info), deps], sort_keys=True, default=str)


@pytest.mark.parametrize("hf_secret", ["", "huggingface"])
def test_the_download_function_finds_its_dependencies_in_its_container(hf_secret):
    local = import_modal_app({"ADAPTER_MODAL_HF_SECRET": hf_secret}, module="modal_download")
    deployed = deploy_dependencies(local.download)
    assert len(deployed) == (4 if hf_secret else 3)  # [HF Secret], env Secret, image, Volume
    # The container gets the function's own environment, never the operator's shell.
    found, inside = container_import("modal_download", "download", local.ENV)
    assert dependency_mismatch(deployed, found) == ""
    assert inside.DEPLOY.hf_secret == hf_secret
    if hf_secret:
        assert repr(deployed[0]) == "modal.Secret.from_name('huggingface')"
        # What the container found before the name was baked into the function's env:
        # Modal's "Function has 3 dependencies but container got 4 object ids".
        bare, _ = container_import("modal_download", "download", {})
        assert "3 dependencies but container got 4" in dependency_mismatch(deployed, bare)


def test_every_function_of_the_app_finds_its_dependencies_in_its_container(tmp_path):
    app = deploy(tmp_path, ENTRIES, revisions={"org/a": SHA_A})
    for plan in app.PLAN.classes:
        env = app.PLAN.gpu_class_options(plan)["env"]
        found, inside = container_import("modal_app", plan.name, env)
        assert dependency_mismatch(deploy_dependencies(app.GPU_CLASSES[plan.name]), found) == ""
        # The container defines its own class only, from its own entry, as the deploy did.
        assert [p.name for p in inside.PLAN.classes] == [plan.name]
        assert inside.PLAN.gpu_class_options(inside.PLAN.classes[0]) == app.PLAN.gpu_class_options(
            plan
        )
    web_env = {**app.PLAN.web.env, **app.PLAN.container_env}
    found, inside = container_import("modal_app", "web", web_env)
    assert dependency_mismatch(deploy_dependencies(app.web), found) == ""
    assert list(inside.GPU_CLASSES) == [A, B, C]  # the adapter calls every class
    found, inside = container_import("modal_app", "apply_warm_schedule", app.PLAN.container_env)
    assert dependency_mismatch(deploy_dependencies(app.apply_warm_schedule), found) == ""
    assert inside.PLAN.warm_targets(NOON) == {B: 1}


def test_editing_one_entry_redefines_only_its_class(tmp_path):
    before = deploy(tmp_path, ENTRIES)
    edited = json.loads(json.dumps(ENTRIES))
    edited[1]["runner"]["modal"]["scaledown_window"] = 900  # a Modal setting of org/b
    edited[0]["price_per_unit"] = 2e-8  # go-livepeer's fields of org/a: not the class's
    edited[0]["url"] = "https://elsewhere.modal.run"
    after = deploy(tmp_path, edited)
    assert class_definition(after, A) == class_definition(before, A)
    assert class_definition(after, C) == class_definition(before, C)
    assert class_definition(after, B) != class_definition(before, B)
    # The adapter serves every model: its own environment carries the whole file.
    assert after.PLAN.container_env[MODELS_JSON_ENV] != before.PLAN.container_env[MODELS_JSON_ENV]


def test_each_class_is_pinned_to_its_downloaded_revisions(tmp_path):
    pins = {"org/a": SHA_A, "org/b": SHA_B}
    first = deploy(tmp_path, ENTRIES, revisions=pins)
    a, b, c = first.PLAN.classes
    assert (a.revisions, b.revisions, c.revisions) == ((("org/a", SHA_A),), (("org/b", SHA_B),), ())
    assert json.loads(a.env[REVISIONS_ENV]) == {"org/a": SHA_A}  # its own only
    # It loads that commit's folder, whatever refs/main says later.
    assert a.served_model.runner.model_path == f"/models/models--org--a/snapshots/{SHA_A}"
    assert c.served_model.runner.model_path is None  # not downloaded: refs/main, with a notice
    # New weights for org/b downloaded: a new definition for its class (a new snapshot), no
    # other.
    second = deploy(tmp_path, ENTRIES, revisions={**pins, "org/b": SHA_B2})
    assert class_definition(second, A) == class_definition(first, A)
    assert class_definition(second, C) == class_definition(first, C)
    assert class_definition(second, B) != class_definition(first, B)


def test_the_download_records_the_commit_and_the_pinned_folder_loads(tmp_path, tiny_sd):
    cache = tmp_path / "hub"
    for repo, sha in (("org/a", SHA_A), ("org/b", SHA_B)):
        folder = Path(snapshot_folder(repo, sha, str(cache)))
        folder.parent.mkdir(parents=True)
        folder.symlink_to(tiny_sd, target_is_directory=True)
        assert record_revision(cache, repo, folder) == sha
    assert read_revisions(cache) == {"org/a": SHA_A, "org/b": SHA_B}
    assert json.loads((cache / REVISIONS_FILE).read_text()) == {"org/a": SHA_A, "org/b": SHA_B}
    pinned = Path(snapshot_folder("org/a", SHA_A, str(cache)))
    assert resolve_model_path("org/a", str(pinned), cache) == pinned
    with pytest.raises(ValueError, match="not a snapshot folder"):
        record_revision(cache, "org/c", tmp_path)


def test_the_deploy_reads_the_volumes_manifest_and_containers_their_own_revisions():
    manifest = json.dumps({"org/a": SHA_A})
    assert read_deploy_revisions({}, lambda: manifest) == {"org/a": SHA_A}
    assert read_deploy_revisions({}, lambda: None) == {}  # nothing downloaded yet
    inside = {REVISIONS_ENV: json.dumps({"org/b": SHA_B})}
    assert read_deploy_revisions(inside, lambda: manifest) == {"org/b": SHA_B}
    with pytest.raises(ConfigError, match="org/a: 'main' is not a commit sha"):
        read_deploy_revisions({}, lambda: '{"org/a": "main"}')


def test_deploying_the_sample_warns_loudly_and_containers_say_nothing(tmp_path, capfd):
    import_modal_app({REVISIONS_ENV: "{}"})
    printed = capfd.readouterr().err
    assert "ADAPTER_MODELS_CONFIG is not set: deploying the SAMPLE models" in printed
    assert "1 x L40S kept warm (about 1,40" in printed and "USD a month" in printed
    assert "modal app stop livepeer-ai-runner" in printed
    # Nothing downloaded: the classes are not pinned, and the deploy says what to run.
    assert "run `modal run modal_download.py`" in printed

    deploy(tmp_path, ENTRIES, revisions={"org/a": SHA_A, "org/b": SHA_B})
    printed = capfd.readouterr().err
    assert "ADAPTER_MODELS_CONFIG is not set" not in printed
    assert "manifest (never downloaded there?): org/c" in printed

    app = deploy(tmp_path, ENTRIES)
    capfd.readouterr()
    import_modal_app(app.PLAN.container_env)  # a container: it prints nothing
    assert capfd.readouterr().err == ""
