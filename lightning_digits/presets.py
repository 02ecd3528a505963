"""The YAML configs that ship inside the package (the default and the presets), found by name, and the check
that every config file a user names is readable YAML before the CLI parses it.

`configs/` at the top of the repo is where people edit them; `lightning_digits/configs` links to it, so a
checkout, an editable install and a wheel all read the same files from the package. Knows nothing of what
the configs contain.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from lightning_digits.errors import UserError

PRESETS_DIR = Path(__file__).resolve().parent / "configs"
DEFAULT_PRESET = "mnist"
CONFIG_FLAGS = ("-c", "--config")


def preset_names() -> list[str]:
    return sorted(path.stem for path in PRESETS_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path:
    path = PRESETS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise UserError(
            f"config {name!r} is neither a file nor a shipped preset (presets: {', '.join(preset_names()) or 'none'}"
            f" in {PRESETS_DIR}); give a path to a YAML file or one of those names"
        )
    return path


def default_config() -> Path:
    """The default config, which must be there: without it `fit` would silently run Lightning's defaults."""
    path = PRESETS_DIR / f"{DEFAULT_PRESET}.yaml"
    if not path.is_file():
        raise UserError(f"the default config {path} is missing from this install; reinstall lightning-digits")
    return path


def _resolve(value: str) -> str:
    """A config argument as a checked file path: an existing file, or the name of a preset. Inline YAML
    (jsonargparse takes `--config '{trainer: {max_epochs: 1}}'` too) passes through to its parser."""
    path = Path(value)
    if not path.is_file():
        if any(char in value for char in "{:\n"):
            return value
        if path.parent != Path(".") or path.suffix:
            raise UserError(
                f"config file {value} does not exist; give a path to a YAML file or a preset name "
                f"({', '.join(preset_names())})"
            )
        path = preset_path(value)
    check_yaml(path)
    return str(path)


def check_yaml(path: Path) -> None:
    try:
        yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{path}: not valid YAML ({problem}{at}); fix the file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read it as a config file ({exc}); check the file") from exc


def expand_config_args(args: list[str]) -> list[str]:
    """`-c fast` / `--config=fast` -> the preset's path; every named config file checked as YAML first."""
    expanded: list[str] = []
    take_next = False
    for arg in args:
        if take_next:
            arg, take_next = _resolve(arg), False
        elif arg in CONFIG_FLAGS:
            take_next = True
        elif arg.startswith("--config="):
            arg = f"--config={_resolve(arg.removeprefix('--config='))}"
        expanded.append(arg)
    return expanded
