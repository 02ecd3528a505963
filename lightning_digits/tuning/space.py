"""The search space as the YAML declares it: each entry a dotted key that `fit` accepts (`model.lr`), with a
range (`low`, `high`, optional `log` or `step`) or a list of `choices`. Checked here for its own shape; whether
`fit` accepts the key and the values is for `fit`'s own parser to say (tuning/trial.py). Turns a trial's
values into `fit` flags. Knows nothing of Lightning, of the study's storage, or of files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lightning_digits.errors import UserError

SPEC_KEYS = {"low", "high", "log", "step", "choices"}


@dataclass(frozen=True)
class Dimension:
    key: str  # a dotted `fit` key, e.g. model.lr
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    # Optuna's choices must be plain scalars: a list choice (model.channels) is kept as its JSON text.
    choices: tuple[Any, ...] | None = None

    @property
    def is_int(self) -> bool:
        return self.choices is None and all(isinstance(v, int) for v in (self.low, self.high, self.step or 1))

    def suggest(self, trial: Any) -> Any:
        if self.choices is not None:
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.is_int:
            return trial.suggest_int(self.key, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    def extremes(self) -> list[Any]:
        """The values that the check before the study tries: both ends of a range, every choice."""
        return list(self.choices) if self.choices is not None else [self.low, self.high]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_choice(value: Any) -> Any:
    return value if value is None or isinstance(value, bool | int | float | str) else json.dumps(value)


def _dimension(key: Any, spec: Any) -> Dimension:
    where = f"search space entry {key!r}"
    if not isinstance(key, str) or "." not in key.strip("."):
        raise UserError(f"{where}: a key is a dotted `fit` option such as model.lr or data.batch_size")
    if not isinstance(spec, Mapping):
        raise UserError(f"{where}: expected a mapping ({{low: .., high: ..}} or {{choices: [..]}}), got {spec!r}")
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise UserError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}; use {sorted(SPEC_KEYS)}")
    if "choices" in spec:
        choices = spec["choices"]
        if set(spec) != {"choices"}:
            raise UserError(f"{where}: give either choices or low/high, not both")
        if not isinstance(choices, list) or not choices:
            raise UserError(f"{where}: choices must be a non-empty list, got {choices!r}")
        encoded = tuple(_as_choice(choice) for choice in choices)
        if len(set(encoded)) != len(encoded):
            raise UserError(f"{where}: choices repeat a value ({choices!r})")
        return Dimension(key, choices=encoded)
    low, high, log, step = spec.get("low"), spec.get("high"), spec.get("log", False), spec.get("step")
    if not (_number(low) and _number(high)):
        raise UserError(f"{where}: low and high must both be numbers, got low={low!r}, high={high!r}")
    if not low < high:
        raise UserError(f"{where}: empty range, low={low!r} is not below high={high!r}")
    if not isinstance(log, bool):
        raise UserError(f"{where}: log must be true or false, got {log!r}")
    if log and low <= 0:
        raise UserError(f"{where}: a log range needs low > 0, got {low!r}")
    if step is not None and (not _number(step) or step <= 0 or log):
        raise UserError(f"{where}: step must be a positive number, and not with log (got step={step!r})")
    return Dimension(key, low=low, high=high, log=log, step=step)


def parse_space(space: Any) -> list[Dimension]:
    if not isinstance(space, Mapping) or not space:
        raise UserError(
            "no search space: give one under `space:` in the tune config (`lightning-digits tune -c tune` uses the "
            "shipped configs/tune.yaml)"
        )
    return [_dimension(key, spec) for key, spec in space.items()]


def flag(key: str, value: Any) -> str:
    """`--model.lr=0.001`; lists and mappings as JSON (a list choice arrives here already as its JSON text)."""
    text = value if isinstance(value, str) else json.dumps(value)
    return f"--{key}={text}"


def flags(values: Mapping[str, Any]) -> list[str]:
    return [flag(key, value) for key, value in values.items()]


def dotted(settings: Mapping[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    """Fixed `fit` settings, nested (`trainer: {max_epochs: 2}`) or dotted (`trainer.max_epochs: 2`), as one flat
    dict of dotted keys."""
    flat: dict[str, Any] = {}
    for key, value in (settings or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(dotted(value, f"{name}."))
        else:
            flat[name] = value
    return flat
