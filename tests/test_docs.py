"""The documentation: the site builds with --strict (a broken link or anchor fails), README's links into the
repository and the docs resolve, the tables rendered from JSON match it, and neither speaks of how the project
was made."""

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from markdown.extensions.toc import slugify

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
PAGES = sorted((REPO / "docs").glob("*.md"))
# Words about the making of the project rather than the project: a reader cannot open them.
PROCESS_WORDS = re.compile(r"sessions?'|other sessions|engineer|the lead\b|lent to|/tmp/[a-z0-9]|issue [0-9]", re.I)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_the_site_builds_with_strict_links_and_anchors(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "site" / "results" / "index.html").is_file()
    assert (tmp_path / "site" / "artifacts_digits" / "acc_curve.png").is_file()


def _anchors(markdown_file: Path) -> set[str]:
    text = re.sub(r"(?ms)^```.*?^```", "", markdown_file.read_text())
    return {slugify(heading.strip(), "-") for heading in re.findall(r"(?m)^#{1,6} (.+)$", text)}


def test_readme_links_resolve_to_files_and_headings():
    broken = []
    for target in LINK.findall(README.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = REPO / path if path else README
        if not file.exists():
            broken.append(target)
        elif anchor and anchor not in _anchors(file):
            broken.append(target)
    assert not broken, f"README links that lead nowhere: {broken}"


def test_readme_and_docs_say_nothing_of_how_the_project_was_made():
    found = [
        f"{file.relative_to(REPO)}:{number}: {line.strip()}"
        for file in [README, *PAGES]
        for number, line in enumerate(file.read_text().splitlines(), 1)
        if PROCESS_WORDS.search(line)
    ]
    assert not found, "\n".join(found)


def test_tables_rendered_from_json_match_it():
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "render_figures.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_changed_figure_in_the_json_changes_the_rendered_table():
    spec = importlib.util.spec_from_file_location("render_figures", REPO / "tools" / "render_figures.py")
    render_figures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render_figures)
    summary = json.loads(render_figures.SUMMARY.read_text())
    text = README.read_text()
    assert "<!-- figures: committed-model -->" in text
    summary["test_accuracy"] = 0.1234
    sources = {name: json.loads(path.read_text()) for name, path in render_figures.SOURCES.items() if path.is_file()}
    assert "**0.1234**" in render_figures.render(text, {**sources, "summary": summary})
