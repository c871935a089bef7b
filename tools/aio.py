"""Small async helpers shared across tools/."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class AsyncClosing:
    """Gives a class with `aclose()` the `async with` protocol (closing on exit)."""

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
