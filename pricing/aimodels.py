"""Read an aiModels.json and write prices back into it, changing nothing else.

Every other field and entry keeps its key order and its exact text (a number such as
`1.9073484e-08` is copied as written, not reformatted); only the indentation is normalised to
the file's own. The new file is written beside the old one, checked (valid JSON, valid entries,
every other field unchanged) and renamed over it, so a failure at any step leaves the original.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.aimodels import ModelEntry, parse_entries
from contract.errors import ConfigError
from pricing.prices import ConfigPrice

PRICE_FIELDS = ("price_per_unit", "pixels_per_unit", "currency")


class AiModelsError(ValueError):
    """The file cannot be read, is not a valid aiModels.json, or could not be rewritten."""


class RawNumber(str):
    """A JSON number kept as the text it was written as."""


@dataclass(frozen=True)
class AiModelsFile:
    path: Path
    text: str
    raw: list[dict[str, Any]]  # the entries as written (numbers as RawNumber)
    entries: list[ModelEntry]


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            # go-livepeer would take the last silently; which one the operator meant is unknown.
            raise AiModelsError(f"key {key!r} appears twice in one object")
        seen[key] = value
    return seen


def read_aimodels(path: Path) -> AiModelsFile:
    """Read and validate `path` as the adapter does; errors name the entry and field."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AiModelsError(f"{path}: cannot read: {exc}") from exc
    try:
        raw = json.loads(
            text, parse_float=RawNumber, parse_int=RawNumber, object_pairs_hook=_unique_keys
        )
    except json.JSONDecodeError as exc:
        raise AiModelsError(
            f"{path}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    except AiModelsError as exc:
        raise AiModelsError(f"{path}: {exc}") from exc
    for index, entry in enumerate(raw if isinstance(raw, list) else []):
        price = entry.get("price_per_unit") if isinstance(entry, dict) else None
        if type(price) is str:
            raise AiModelsError(
                f"{path} entry {index}: field 'price_per_unit' must be a JSON number, got the "
                f'string {price!r}: go-livepeer refuses strings (its docs\' "0.5e-2USD" '
                "example is a docs bug; write the number and put the currency in 'currency')"
            )
    try:
        entries = parse_entries(json.loads(text), str(path))
    except ConfigError as exc:
        raise AiModelsError(str(exc)) from exc
    return AiModelsFile(path, text, raw, entries)


def _indent_of(text: str) -> str:
    match = re.search(r"\n([ \t]+)\S", text)
    return match.group(1) if match else "  "


def _dump(value: Any, indent: str, level: int = 0) -> str:
    pad, inner = indent * level, indent * (level + 1)
    if isinstance(value, RawNumber):
        return str(value)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [
            f"{inner}{json.dumps(k, ensure_ascii=False)}: {_dump(v, indent, level + 1)}"
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list):
        if not value:
            return "[]"
        items = [f"{inner}{_dump(v, indent, level + 1)}" for v in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    # Strings, booleans and null are written by json itself.
    return json.dumps(value, ensure_ascii=False)


def with_prices(file: AiModelsFile, prices: dict[int, ConfigPrice]) -> str:
    """The file's text with `prices` (by entry index) in place of each entry's price fields.

    A price field already in an entry is replaced where it stands; a new one goes at its end.
    """
    entries = [dict(entry) for entry in file.raw]
    for index, price in prices.items():
        if not 0 <= index < len(entries):
            raise AiModelsError(f"{file.path}: there is no entry {index}")
        entries[index].update(
            price_per_unit=RawNumber(price.json_price()),
            pixels_per_unit=RawNumber(str(price.pixels_per_unit)),
            currency=price.currency,
        )
    text = _dump(entries, _indent_of(file.text))
    return text + "\n" if file.text.endswith("\n") else text


def _check_rewrite(file: AiModelsFile, text: str, prices: dict[int, ConfigPrice]) -> None:
    """Refuse a rewrite that is not valid, or that changed anything but the given prices."""
    try:
        rewritten = json.loads(text)
        parse_entries(rewritten, f"{file.path} (rewritten)")
    except (json.JSONDecodeError, ConfigError) as exc:
        raise AiModelsError(f"{file.path}: the rewritten file would be invalid: {exc}") from exc
    original = json.loads(file.text)
    if len(original) != len(rewritten):
        raise AiModelsError(f"{file.path}: the rewrite would change the number of entries")
    for index, (before, after) in enumerate(zip(original, rewritten, strict=True)):
        changed = PRICE_FIELDS if index in prices else ()
        kept_before = [(k, v) for k, v in before.items() if k not in changed]
        kept_after = [(k, v) for k, v in after.items() if k not in changed]
        if kept_before != kept_after:
            raise AiModelsError(f"{file.path}: entry {index} would change beyond its price")


def write_prices(file: AiModelsFile, prices: dict[int, ConfigPrice]) -> None:
    """Write `prices` into the file atomically; on any failure the original is left as it was."""
    text = with_prices(file, prices)
    _check_rewrite(file, text, prices)
    folder = file.path.parent
    handle, temp = tempfile.mkstemp(prefix=f".{file.path.name}.", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, stat.S_IMODE(file.path.stat().st_mode))
        if file.path.read_text(encoding="utf-8") != file.text:
            raise AiModelsError(f"{file.path}: changed on disk while prices were computed")
        os.replace(temp, file.path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
