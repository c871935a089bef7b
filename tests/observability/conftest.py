"""Fixtures: the simulators, and the spans this process records (OpenTelemetry SDK, in memory)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.sandbox_fixtures import sandbox, services, settings

__all__ = ["sandbox", "services", "settings", "spans"]


class _Capture(InMemorySpanExporter):
    """Keeps spans only while a test asks for them: the provider stays set for the process."""

    recording = False

    def export(self, spans: object) -> SpanExportResult:
        if not self.recording:
            return SpanExportResult.SUCCESS
        return super().export(spans)  # type: ignore[arg-type]


_CAPTURE = _Capture()


def _provider() -> TracerProvider:
    # A process has one TracerProvider, set once: the first test that asks sets it.
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    provider = TracerProvider()
    trace.set_tracer_provider(provider)
    return provider


_installed: list[TracerProvider] = []


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span finished in this process during the test (`spans.get_finished_spans()`)."""
    if not _installed:
        provider = _provider()
        provider.add_span_processor(SimpleSpanProcessor(_CAPTURE))
        _installed.append(provider)
    _CAPTURE.clear()
    _CAPTURE.recording = True
    try:
        yield _CAPTURE
    finally:
        _CAPTURE.recording = False
        _CAPTURE.clear()


def named(finished: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    """The spans called `name`, in the order they ended."""
    return [span for span in finished if span.name == name]
