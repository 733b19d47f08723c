"""README.md and docs/ stay true to the code and to the repository.

The settings tables match the settings classes and their defaults, the CI command is the
README's, every curl example uploads a file the repository ships, every relative link and
code path names a file that exists, and the line that saves a returned image really does.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydantic import BaseModel
from pydantic_settings import BaseSettings

from adapter.jobs.settings import JobsSettings
from adapter.settings import Limits, LiveRunnerSettings, Settings, WorkerbeeSettings
from contract.aimodels import RunnerSettings
from contract.modal_settings import ModalSettings
from contract.schemas import ImageResponse, Media, VideoResponse
from functions.media import png_data_url
from modal_deploy.settings import ModalDeploySettings
from pricing.__main__ import main as pricing_main

REPO = Path(__file__).resolve().parents[1]
README_PATH = REPO / "README.md"
DOCS = REPO / "docs"
DOC_PATHS = [README_PATH, *sorted(DOCS.glob("*.md"))]
README = README_PATH.read_text(encoding="utf-8")
INPUTS = REPO / "examples" / "inputs"

# Where each settings class's table lives.
ENV_TABLES: dict[type[BaseSettings], Path] = {
    Settings: DOCS / "configuration.md",
    Limits: DOCS / "configuration.md",
    WorkerbeeSettings: DOCS / "openai-and-workerbee.md",
    ModalDeploySettings: DOCS / "modal.md",
    LiveRunnerSettings: DOCS / "live-runner.md",
    JobsSettings: DOCS / "configuration.md",
}
KEY_TABLES: dict[type[BaseModel], Path] = {
    RunnerSettings: DOCS / "configuration.md",
    ModalSettings: DOCS / "modal.md",
}
PRICING_DOC = DOCS / "pricing.md"
MAX_README_LINES = 400


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def env_names(settings: type[BaseSettings]) -> dict[str, str]:
    """field -> the environment variable(s) the docs must name for it."""
    prefix = settings.model_config.get("env_prefix", "")
    names = {}
    for name, field in settings.model_fields.items():
        if name in ("limits", "live_runner", "workerbee", "jobs"):
            continue  # Limits, LiveRunnerSettings, WorkerbeeSettings, JobsSettings: their own
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        names[name] = " or ".join(choices) if choices else f"{prefix}{name}".upper()
    return names


def table_row(doc: Path, variable: str) -> list[str]:
    """The cells of the table row in `doc` whose first cell names `variable`."""
    pattern = rf"^\| `{re.escape(variable)}` (?:or `\w+` )?\|(.*)$"
    row = re.search(pattern, text(doc), re.M)
    assert row is not None, f"{doc.relative_to(REPO)} has no table row for {variable}"
    return [cell.strip() for cell in row.group(1).split("|")]


def split_fences(markdown: str) -> tuple[str, list[tuple[str, str]]]:
    """(the prose with fenced blocks blanked out, [(language, body) of each fenced block])."""
    prose: list[str] = []
    blocks: list[tuple[str, str]] = []
    fence: str | None = None
    body: list[str] = []
    for line in markdown.splitlines():
        stripped = line.strip()
        if fence is None and stripped.startswith("```"):
            fence, body = stripped[3:].strip(), []
            prose.append("")
        elif fence is not None and stripped.startswith("```"):
            blocks.append((fence, "\n".join(body)))
            fence = None
            prose.append("")
        elif fence is not None:
            body.append(line)
            prose.append("")
        else:
            prose.append(line)
    return "\n".join(prose), blocks


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file (outside code blocks)."""
    prose, _ = split_fences(markdown)
    seen: dict[str, int] = {}
    result = set()
    for heading in re.findall(r"^#{1,6} (.+?)\s*#*$", prose, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def shell_commands(doc: Path) -> list[str]:
    """The commands of the shell blocks of `doc`, continuation lines joined."""
    _, blocks = split_fences(text(doc))
    commands = []
    for language, body in blocks:
        if language in {"bash", "sh", "shell"}:
            commands += [c.strip() for c in body.replace("\\\n", " ").splitlines() if c.strip()]
    return commands


def curl_commands() -> list[tuple[Path, str]]:
    return [
        (doc, command)
        for doc in DOC_PATHS
        for command in shell_commands(doc)
        if re.match(r"(?:\S+=\S+ )*curl ", command)
    ]


def save_line(tool: str) -> str:
    """The README's command that a curl answer is piped into to save its images."""
    pattern = {"python3": r"\| (python3 -c '[^']+')", "jq": r"\| (jq -r [^`]+)`"}[tool]
    found = re.search(pattern, README)
    assert found is not None, f"README has no line that saves the image with {tool}"
    return found.group(1)


# --- the commands --------------------------------------------------------------------------


def test_ci_runs_exactly_the_readme_test_command() -> None:
    section = README.split("Run the tests", 1)[1]
    command = re.search(r"```bash\n(.+?)\n```", section, re.S)
    assert command is not None
    ci_lines = (REPO / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci_lines[-1] == command.group(1)


def test_ci_waits_for_the_postgresql_server_and_requires_the_services() -> None:
    # The jobs store's PostgreSQL tests (and the page's browser test) skip where their service
    # is missing; CI waits for PostgreSQL, then makes a missing service a failure.
    ci_lines = (REPO / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    waits = [i for i, line in enumerate(ci_lines) if "/dev/tcp/127.0.0.1/5432" in line]
    required = [i for i, line in enumerate(ci_lines) if line == "export TESTS_REQUIRE_SERVICES=1"]
    assert waits and required and waits[0] < required[0] < len(ci_lines) - 1


def test_the_readme_is_a_front_door_of_at_most_400_lines() -> None:
    assert len(README.splitlines()) <= MAX_README_LINES


def test_the_cpu_install_uses_pytorchs_cpu_index_and_nowhere_claims_pip_picks_it() -> None:
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in README
    pyproject = text(REPO / "pyproject.toml")
    for path, content in [*((p, text(p)) for p in DOC_PATHS), (REPO / "pyproject.toml", pyproject)]:
        flat = " ".join(content.split()).lower()
        assert "without cuda pip takes the cpu build" not in flat, path


# --- settings tables -----------------------------------------------------------------------


@pytest.mark.parametrize("settings", list(ENV_TABLES), ids=lambda s: s.__name__)
def test_every_environment_setting_is_in_a_table(settings: type[BaseSettings]) -> None:
    for variables in env_names(settings).values():
        first = variables.split(" or ")[0]
        default, meaning = table_row(ENV_TABLES[settings], first)[:2]
        assert default and meaning, f"{first}: the table row gives no default or meaning"


def test_limit_defaults_in_the_table_are_the_code_defaults() -> None:
    for name, variable in env_names(Limits).items():
        default_cell = table_row(ENV_TABLES[Limits], variable)[0]
        shown = float(default_cell.split()[0])
        assert shown == Limits.model_fields[name].default, variable


def test_the_docs_name_only_real_environment_settings() -> None:
    known = {
        variable
        for settings in ENV_TABLES
        for variables in env_names(settings).values()
        for variable in variables.split(" or ")
    }
    for doc in DOC_PATHS:
        named = set(re.findall(r"\bADAPTER_[A-Z0-9_]*[A-Z0-9]\b", text(doc)))
        assert named - known == set(), doc.relative_to(REPO)


@pytest.mark.parametrize("model", list(KEY_TABLES), ids=lambda m: m.__name__)
def test_every_runner_key_is_in_a_table(model: type[BaseModel]) -> None:
    doc = text(KEY_TABLES[model])
    for name in model.model_fields:
        # In the first cell of a table row, alone or with others ("`a`, `b`").
        assert re.search(rf"^\| [^|]*`{name}`[^|]*\|", doc, re.M), name


def test_pricing_example_output_is_what_the_command_prints(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    doc = text(PRICING_DOC)
    command = re.search(r"\$ python -m pricing (table .+?)\n(entry 0.+?)\n```", doc, re.S)
    assert command is not None
    argv = command.group(1).replace("\\\n", " ").split()
    assert pricing_main(argv) == 0
    assert capsys.readouterr().out.rstrip("\n") == command.group(2)


# --- curl examples and their inputs --------------------------------------------------------


def test_every_curl_upload_is_a_file_the_repository_ships() -> None:
    uploads = [
        (doc, path)
        for doc, command in curl_commands()
        for path in re.findall(r"(?:=|-d |--data-binary |--data )@([^\s'\"]+)", command)
    ]
    assert len(uploads) >= 8  # the README and docs/pipelines.md upload files
    for doc, path in uploads:
        assert (REPO / path).is_file(), f"{doc.relative_to(REPO)}: curl uploads {path}"


def test_every_multipart_route_has_a_curl_example_with_a_file_in_the_readme() -> None:
    routes = {
        route
        for doc, command in curl_commands()
        if doc == README_PATH and "=@examples/inputs/" in command
        for route in re.findall(r"localhost:8000/([a-z-]+)", command)
    }
    assert routes >= {"image-to-image", "image-to-video", "upscale", "audio-to-text"}


def test_the_sample_inputs_are_what_the_readme_says() -> None:
    with Image.open(INPUTS / "lighthouse.png") as image:
        assert image.format == "PNG" and image.size == (256, 256)
    with Image.open(INPUTS / "lighthouse-128.png") as image:
        assert image.format == "PNG" and image.size == (128, 128)
        assert image.width * image.height <= Limits.model_fields["max_upscale_input_pixels"].default
    with wave.open(str(INPUTS / "tones.wav")) as audio:
        assert audio.getnchannels() == 1
        assert audio.getnframes() / audio.getframerate() == pytest.approx(2.0)


def test_the_generator_makes_the_committed_inputs(tmp_path: Path) -> None:
    shutil.copy(INPUTS / "make_inputs.py", tmp_path)
    subprocess.run([sys.executable, "make_inputs.py"], cwd=tmp_path, check=True)
    for name in ("lighthouse.png", "lighthouse-128.png"):
        made = np.asarray(Image.open(tmp_path / name), dtype=np.int16)
        committed = np.asarray(Image.open(INPUTS / name), dtype=np.int16)
        assert made.shape == committed.shape
        assert np.abs(made - committed).mean() < 1.0, name
    assert (tmp_path / "tones.wav").read_bytes() == (INPUTS / "tones.wav").read_bytes()


def sample_png(size: tuple[int, int], colour: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", size, colour)


@pytest.mark.parametrize("tool", ["python3", "jq"])
def test_the_save_line_writes_the_returned_image_as_a_png(tool: str, tmp_path: Path) -> None:
    if tool == "jq" and not (shutil.which("jq") and shutil.which("base64")):
        pytest.skip("jq or base64 is not installed")
    image = sample_png((64, 48), (200, 30, 90))
    answer = ImageResponse(images=[Media(url=png_data_url(image), seed=42, nsfw=False)])
    subprocess.run(
        ["bash", "-c", save_line(tool)],
        input=answer.model_dump_json().encode(),
        cwd=tmp_path,
        check=True,
    )
    saved = tmp_path / ("out-0.png" if tool == "python3" else "out.png")
    with Image.open(saved) as png:
        assert png.format == "PNG"
        assert np.array_equal(np.asarray(png.convert("RGB")), np.asarray(image))


def test_the_save_line_writes_every_frame_of_a_video(tmp_path: Path) -> None:
    frames = [sample_png((32, 32), (10 * i, 0, 0)) for i in range(3)]
    answer = VideoResponse(
        frames=[[Media(url=png_data_url(f), seed=7, nsfw=False) for f in frames]]
    )
    subprocess.run(
        ["bash", "-c", save_line("python3")],
        input=answer.model_dump_json().encode(),
        cwd=tmp_path,
        check=True,
    )
    for i, frame in enumerate(frames):
        saved = Image.open(io.BytesIO((tmp_path / f"out-{i}.png").read_bytes()))
        assert np.array_equal(np.asarray(saved.convert("RGB")), np.asarray(frame))


# --- links and paths -----------------------------------------------------------------------


@pytest.mark.parametrize("doc", DOC_PATHS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_points_to_an_existing_file_and_heading(doc: Path) -> None:
    prose, _ = split_fences(text(doc))
    links = re.findall(r"\[[^\]]*\]\(([^)\s]+)\)", prose)
    for link in links:
        if re.match(r"[a-z]+:", link):
            continue  # https:, mailto:
        target, _, anchor = link.partition("#")
        path = (doc.parent / target).resolve() if target else doc
        assert path.exists(), f"{doc.relative_to(REPO)}: {link} points nowhere"
        assert REPO in path.parents or path == REPO, (
            f"{doc.relative_to(REPO)}: {link} leaves the repo"
        )
        if anchor:
            assert path.suffix == ".md", link
            assert anchor in anchors(text(path)), f"{doc.relative_to(REPO)}: no heading for {link}"


@pytest.mark.parametrize("doc", DOC_PATHS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_code_path_the_docs_name_exists(doc: Path) -> None:
    for path in re.findall(r"`([\w.-]+(?:/[\w.-]+)+\.(?:py|json|md|toml|yaml))`", text(doc)):
        if path.startswith("bench/results/"):
            continue  # what a benchmark run writes (git-ignored)
        assert (REPO / path).exists(), f"{doc.relative_to(REPO)} names {path}"


def test_the_docs_name_no_file_outside_the_repository() -> None:
    for doc in DOC_PATHS:
        content = text(doc)
        assert "../shared" not in content, doc.relative_to(REPO)
        assert "GPU-BASELINE.md" not in content, doc.relative_to(REPO)
