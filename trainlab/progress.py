"""Progress bars for long work: tqdm.auto (a widget in notebooks, text in terminals).

``progress_bar(False, ...)`` returns a bar that does nothing, so callers update
one object either way and tqdm is imported only when a bar is shown.
"""

from __future__ import annotations

from typing import Any

__all__ = ["progress_bar"]


class _Silent:
    """The bar when no progress is asked for."""

    total: int | None = None
    n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, text: str) -> None:
        """Nothing to show."""

    def close(self) -> None:
        """Nothing to close."""


def progress_bar(enabled: bool | None, *, total: int | None, desc: str, unit: str = "it") -> Any:
    """A tqdm.auto bar when ``enabled``, else a silent stand-in with the same methods.

    ``None`` means a bar if tqdm is installed; ``True`` without tqdm names the fix.
    """
    if enabled is not False:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            if enabled:
                from trainlab.errors import TargetError

                raise TargetError(
                    "progress=True needs tqdm: pip install 'trainlab[notebook]'"
                ) from None
        else:
            return tqdm(total=total, desc=desc, unit=unit, leave=False)
    silent = _Silent()
    silent.total = total
    return silent
