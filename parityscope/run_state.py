"""What a run carries beside its metric series, shaped as wandb's and trackio's clients shape it:
``Config`` (``run.config.lr``, ``run.config["lr"]``, ``run.config.update({...})``) and ``Summary``
(``run.summary["best_accuracy"] = x``), plus ``as_number``, the one conversion of a logged value.

Standard library only: numpy arrays and scalars and torch tensors are recognised by what they
do (``item()``), never imported, so the client installs with httpx alone (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any

__all__ = ["Config", "Summary", "as_mapping", "as_number", "json_safe"]


def as_number(value: Any) -> float | None:
    """A logged value as a float, or None when it is not one number.

    Numbers (``bool`` as 0/1), numpy scalars and one-element arrays, one-element torch tensors
    (on any device) are numbers; strings, ``None``, lists, multi-element arrays are not.
    """
    if value is None or isinstance(value, str | bytes):
        return None
    item = getattr(value, "item", None)
    try:
        if item is not None and callable(item):
            value = item()  # numpy and torch: raises for more than one element
            if isinstance(value, str | bytes):
                return None
        return float(value)
    except (TypeError, ValueError, RuntimeError, OverflowError):
        return None


def _json_default(value: Any) -> Any:
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError, RuntimeError):
            pass
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    return str(value)


def json_safe(value: Any) -> Any:
    """A config value as JSON: numpy and torch scalars as numbers, arrays as lists, anything
    else that JSON lacks (dtypes, paths, enums) as its text."""
    return json.loads(json.dumps(value, default=_json_default))


def as_mapping(values: Any, where: str) -> Mapping[str, Any]:
    """A config given as a mapping or as an object with attributes (``argparse.Namespace``)."""
    if values is None:
        return {}
    if isinstance(values, Mapping):
        return values
    if hasattr(values, "__dict__"):
        return vars(values)
    raise TypeError(f"{where}: config must be a mapping or an argparse.Namespace, got {type(values).__name__}")


class Config(MutableMapping[str, Any]):
    """A run's configuration: items and attributes both. Changes made after ``init`` are sent
    with the run's final status (``finish``)."""

    def __init__(self, values: Mapping[str, Any], on_change: Callable[[], None] | None = None) -> None:
        object.__setattr__(self, "_values", {str(k): json_safe(v) for k, v in values.items()})
        object.__setattr__(self, "_on_change", on_change)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._values[str(key)] = json_safe(value)
        if self._on_change is not None:
            self._on_change()

    def __delitem__(self, key: str) -> None:
        del self._values[key]
        if self._on_change is not None:
            self._on_change()

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"config has no key {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(f"config has no key {name!r}") from None

    def __repr__(self) -> str:
        return f"Config({self._values!r})"

    def update(self, values: Any = None, allow_val_change: bool | None = None, **more: Any) -> None:  # type: ignore[override]
        """Add or change keys from a mapping or an ``argparse.Namespace`` (``allow_val_change``
        is accepted as wandb's is; values may always change)."""
        merged = {**as_mapping(values, "config.update"), **more}
        if merged:
            self._values.update({str(k): json_safe(v) for k, v in merged.items()})
            if self._on_change is not None:
                self._on_change()

    def setdefaults(self, values: Mapping[str, Any]) -> None:
        """Add the keys that are not set yet."""
        self.update({k: v for k, v in as_mapping(values, "config.setdefaults").items() if k not in self._values})

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)


class Summary(MutableMapping[str, Any]):
    """A run's summary: the last value logged of each key, unless a value was set here.

    Values set here (``summary["best_accuracy"] = 0.93``) that are numbers are logged once, when
    the run finishes, as ``summary/<key>`` at the run's last step; other values are skipped with
    a warning then.
    """

    def __init__(self, latest: Mapping[str, float]) -> None:
        object.__setattr__(self, "_latest", latest)
        object.__setattr__(self, "_set", {})

    @property
    def explicit(self) -> dict[str, Any]:
        """The values set on the summary itself."""
        return dict(self._set)

    def __getitem__(self, key: str) -> Any:
        if key in self._set:
            return self._set[key]
        return self._latest[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._set[str(key)] = value

    def __delitem__(self, key: str) -> None:
        del self._set[key]

    def __iter__(self) -> Iterator[str]:
        return iter({**dict.fromkeys(self._latest), **dict.fromkeys(self._set)})

    def __len__(self) -> int:
        return len(set(self._latest) | set(self._set))

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"summary has no key {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __repr__(self) -> str:
        return f"Summary({dict(self)!r})"
