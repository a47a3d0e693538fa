"""Option parsing shared by the Zeiler & Fergus commands (:mod:`.convnets`, :mod:`.occlusion`,
:mod:`.invariance`)."""

from __future__ import annotations

import math
from typing import Any, Optional

from ._app import parse_list


def parse_ints(value: Optional[str], flag: str, all_ok: bool = False) -> Optional[list[int]]:
    """Comma-separated integers (``None`` if not given, or ``all`` where ``all_ok``)."""
    from ..exceptions import ParameterError

    items = parse_list(value)
    if items is None or (all_ok and items == ["all"]):
        return None
    try:
        return [int(u) for u in items]
    except ValueError as err:
        raise ParameterError(f"{flag} takes comma-separated integers{' or all' if all_ok else ''}; got {value!r}.") from err


def number_or(value: str, words: tuple[str, ...], flag: str) -> Any:
    """``value`` if it is one of ``words``, else the number it spells."""
    from ..exceptions import ParameterError

    if value in words:
        return value
    try:
        number = float(value)
    except ValueError as err:
        raise ParameterError(f"{flag} takes {', '.join(repr(w) for w in words)} or a number; got {value!r}.") from err
    if not math.isfinite(number):
        raise ParameterError(f"{flag} takes {', '.join(repr(w) for w in words)} or a finite number; got {value!r}.")
    return number
