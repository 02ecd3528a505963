"""Rules of the code's layout that no single feature test would notice breaking: Lightning's private API is used in
training/lightning_internals.py alone, and another Lightning release is refused there in one line; the code is as
`ruff format` writes it, and lint-clean, unused `noqa` markers included (RUF100)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from lightning_digits.errors import UserError
from lightning_digits.training import lightning_internals

from .conftest import REPO

PACKAGE = REPO / "lightning_digits"
INTERNALS = PACKAGE / "training" / "lightning_internals.py"
# A private name imported from Lightning, Lightning's internal `overrides` package, a private attribute of the
# Trainer or its strategy, or EMAWeightAveraging's undocumented checkpoint key.
PRIVATE = re.compile(
    r"from lightning[\w.]* import [^\n#]*\b_[A-Za-z]"
    r"|lightning\.pytorch\.overrides"
    r"|\b(trainer|strategy|launcher)\._[a-z]"
    r"|[\"']current_model_state[\"']"
)


@pytest.mark.unit
def test_lightnings_private_api_is_used_in_one_module_only():
    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != INTERNALS
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if PRIVATE.search(line)
    ]
    assert not found, "move these into lightning_digits/training/lightning_internals.py:\n" + "\n".join(found)
    assert PRIVATE.search(INTERNALS.read_text()), "the pattern no longer finds them"


@pytest.mark.unit
def test_another_lightning_release_is_one_line_naming_the_supported_one():
    lightning_internals.check_version(lightning_internals.SUPPORTED[0])
    with pytest.raises(UserError) as refused:
        lightning_internals.check_version("2.7.0")
    message = str(refused.value)
    assert "\n" not in message and "not the installed 2.7.0" in message
    assert f"pip install lightning=={lightning_internals.SUPPORTED[0]}" in message


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]], ids=["lint", "format"])
def test_the_code_is_as_ruff_writes_it(command):
    ruff = [sys.executable, "-m", "ruff", *command]
    result = subprocess.run(ruff, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]


@pytest.mark.unit
def test_bench_imports_the_package_and_its_siblings_only():
    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in sorted((REPO / "bench").glob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.match(r"\s*(from|import) tests\b", line) or re.search(r"sys\.path\.(insert|append)", line)
    ]
    assert not found, (
        "bench/ must not reach into tests/ (move what both need into the package or bench/):\n" + "\n".join(found)
    )
