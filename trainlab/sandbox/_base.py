"""What every sandbox server shares: start, stop, and a context manager."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Background:
    """A local server: ``start()`` returns it, ``stop()`` ends it, ``with`` does both."""

    def start(self) -> Self:  # pragma: no cover - every server defines it
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - every server defines it
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
