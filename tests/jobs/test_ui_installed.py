"""The page ships in the wheel: built from the source tree, unpacked alone, it is served.

The other tests run from the source tree, where the page's files are beside page.py whatever
pyproject.toml says; only an installed layout shows that setuptools' package-data carries them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("adapter", "contract", "functions", "modal_deploy", "pricing")

SERVE = """
import json, adapter.jobs.ui as ui
from fastapi import FastAPI
from fastapi.testclient import TestClient
app = FastAPI()
app.include_router(ui.build_ui_router())
client = TestClient(app)
answers = {name: client.get("/ui/" + name) for name in ("", "app.js", "style.css")}
print(json.dumps({
    "file": ui.__file__,
    "status": {name: a.status_code for name, a in answers.items()},
    "sizes": {name: len(a.content) for name, a in answers.items()},
    "title": "<title>" in answers[""].text,
}))
"""


def test_the_installed_package_serves_the_page(tmp_path: Path):
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for package in PACKAGES:
        shutil.copytree(
            REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip, "--no-index", "-w", str(wheels), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(site)
    for name in ("index.html", "app.js", "style.css"):
        assert f"adapter/jobs/ui/{name}" in names
    elsewhere = tmp_path / "elsewhere"  # a cwd with no source tree to shadow the install
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = subprocess.run(
        [sys.executable, "-c", SERVE],
        cwd=elsewhere,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    served = json.loads(run.stdout.strip().splitlines()[-1])
    assert Path(served["file"]).is_relative_to(site)
    assert served["status"] == {"": 200, "app.js": 200, "style.css": 200}
    assert served["title"] and min(served["sizes"].values()) > 1000
