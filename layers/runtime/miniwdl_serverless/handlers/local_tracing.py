"""The tracer's provider in the embedded local mode: nothing is traced there (there is no X-Ray
daemon), and powertools' default provider imports the X-Ray SDK (~0.2 s, and a botocore
client) and builds a segment for every invocation."""

from __future__ import annotations

import contextlib
import numbers
import traceback
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment


class NoSegment(BaseSegment):
    """A segment that records nothing."""

    def close(self, end_time: int | None = None) -> None:
        pass

    def add_subsegment(self, subsegment: Any) -> None:
        pass

    def remove_subsegment(self, subsegment: Any) -> None:
        pass

    def put_annotation(self, key: str, value: str | numbers.Number | bool) -> None:
        pass

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        pass

    def add_exception(
        self,
        exception: BaseException,
        stack: list[traceback.StackSummary],
        remote: bool = False,
    ) -> None:
        pass


class NoTracing(BaseProvider):
    """powertools' tracing provider interface, tracing nothing."""

    @contextlib.contextmanager
    def in_subsegment(self, name: Any = None, **kwargs: Any) -> Iterator[BaseSegment]:  # noqa: ARG002
        yield NoSegment()

    @contextlib.asynccontextmanager
    async def in_subsegment_async(  # the interface's signature
        self,
        name: Any = None,  # noqa: ARG002
        **kwargs: Any,  # noqa: ARG002
    ) -> AsyncIterator[BaseSegment]:
        yield NoSegment()

    def put_annotation(self, key: str, value: str | numbers.Number | bool) -> None:
        pass

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        pass

    def patch(self, modules: Sequence[str]) -> None:
        pass

    def patch_all(self) -> None:
        pass
