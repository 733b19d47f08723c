"""README.md stays true to the code: CI command, settings and defaults, the pricing example."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from adapter.settings import Limits, Settings
from contract.aimodels import RunnerSettings
from contract.modal_settings import ModalSettings
from modal_deploy.plan import ModalDeploySettings
from pricing.__main__ import main as pricing_main

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def env_names(settings: type[BaseSettings]) -> dict[str, str]:
    """field -> the environment variable(s) the README must name for it."""
    prefix = settings.model_config.get("env_prefix", "")
    names = {}
    for name, field in settings.model_fields.items():
        if name == "limits":
            continue  # Limits, a settings class of its own
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        names[name] = " or ".join(choices) if choices else f"{prefix}{name}".upper()
    return names


def table_row(variable: str) -> list[str]:
    """The cells of the README table row whose first cell names `variable`."""
    row = re.search(rf"^\| `{re.escape(variable)}` (?:or `\w+` )?\|(.*)$", README, re.M)
    assert row is not None, f"README has no table row for {variable}"
    return [cell.strip() for cell in row.group(1).split("|")]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    section = README.split("Run the tests", 1)[1]
    command = re.search(r"```bash\n(.+?)\n```", section, re.S)
    assert command is not None
    ci_lines = (REPO / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci_lines[-1] == command.group(1)


@pytest.mark.parametrize("settings", [Settings, Limits, ModalDeploySettings])
def test_every_environment_setting_is_in_a_readme_table(settings: type[BaseSettings]) -> None:
    for variables in env_names(settings).values():
        first = variables.split(" or ")[0]
        default, meaning = table_row(first)[:2]
        assert default and meaning, f"{first}: the README row gives no default or meaning"


def test_limit_defaults_in_the_readme_are_the_code_defaults() -> None:
    for name, variable in env_names(Limits).items():
        default_cell = table_row(variable)[0]
        shown = float(default_cell.split()[0])
        assert shown == Limits.model_fields[name].default, variable


def test_readme_names_only_real_environment_settings() -> None:
    known = {
        variable
        for settings in (Settings, Limits, ModalDeploySettings)
        for variables in env_names(settings).values()
        for variable in variables.split(" or ")
    }
    named = set(re.findall(r"\bADAPTER_[A-Z0-9_]*[A-Z0-9]\b", README))
    assert named - known == set()


@pytest.mark.parametrize("model", [RunnerSettings, ModalSettings])
def test_every_runner_key_is_in_a_readme_table(model: type) -> None:
    for name in model.model_fields:
        # In the first cell of a table row, alone or with others ("`a`, `b`").
        assert re.search(rf"^\| [^|]*`{name}`[^|]*\|", README, re.M), name


def test_pricing_example_output_is_what_the_command_prints(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    command = re.search(r"\$ python -m pricing (table .+?)\n(entry 0.+?)\n```", README, re.S)
    assert command is not None
    argv = command.group(1).replace("\\\n", " ").split()
    assert pricing_main(argv) == 0
    assert capsys.readouterr().out.rstrip("\n") == command.group(2)
