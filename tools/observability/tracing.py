"""Exporting crmops's spans: the OpenTelemetry SDK, set up from the standard `OTEL_*`
environment variables when the `crmops[otel]` extra is installed::

    pip install 'crmops[otel]'
    OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318 OTEL_SERVICE_NAME=crmops-mcp crmops mcp --http

`configure_tracing()` (run by `crmops` at start) does nothing unless `OTEL_TRACES_EXPORTER`,
`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (and
`OTEL_SDK_DISABLED` is not `true`), and nothing when a TracerProvider is already set (a
process run under `opentelemetry-instrument`). Otherwise it sets a TracerProvider with a
batch processor per exporter named in `OTEL_TRACES_EXPORTER` (default `otlp`; also
`console`, to stderr, and `none`). The SDK reads the rest itself: the OTLP endpoint, headers,
protocol (`http/protobuf`, or `grpc` with its exporter installed), `OTEL_SERVICE_NAME`
(default `crmops`), `OTEL_RESOURCE_ATTRIBUTES`, the sampler and the batch sizes.

Importing this module loads nothing but `os`: `crmops errors` runs it too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

TRIGGERS = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)
"""Any of these set: crmops exports its spans."""
INSTALL_HINT = "pip install 'crmops[otel]'"


def tracing_requested(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for spans to be exported."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(environ.get(name, "").strip() for name in TRIGGERS)


def configure_tracing(environ: Mapping[str, str] = os.environ) -> bool:
    """Set up the OpenTelemetry SDK as the environment asks (see the module doc); True when
    it did. Without the SDK installed it warns (on stderr) and returns False. `environ`
    decides whether and which exporters; the SDK reads its own settings (endpoint, headers,
    sampler) from `os.environ`."""
    if not tracing_requested(environ):
        return False
    from opentelemetry import trace  # noqa: PLC0415 - only when tracing is asked for

    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return False  # set up already (opentelemetry-instrument, or the embedding program)
    names = _exporter_names(environ)
    if not names:
        return False
    try:
        from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
        from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415
    except ImportError:
        _warn(f"OTEL_* ask for traces but the OpenTelemetry SDK is not installed: {INSTALL_HINT}")
        return False
    exporters = [exporter for name in names if (exporter := _exporter(name, environ))]
    if not exporters:
        return False
    provider = TracerProvider(resource=Resource.create(_default_resource(environ)))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return True


def _exporter_names(environ: Mapping[str, str]) -> list[str]:
    names = [n.strip().lower() for n in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")]
    return [name for name in names if name and name != "none"]


def _default_resource(environ: Mapping[str, str]) -> dict[str, str]:
    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win: the SDK merges them over this.
    attributes = environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    if environ.get("OTEL_SERVICE_NAME") or "service.name=" in attributes:
        return {}
    return {"service.name": "crmops"}


def _exporter(name: str, environ: Mapping[str, str]) -> SpanExporter | None:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter  # noqa: PLC0415

        return ConsoleSpanExporter(out=sys.stderr)  # stdout may be MCP's protocol
    if name != "otlp":
        _warn(f"OTEL_TRACES_EXPORTER names {name!r}: crmops knows otlp, console and none")
        return None
    protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    try:
        if protocol.strip() == "grpc":
            # Not installed by the extra (grpcio is large); typed only where it is.
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found, unused-ignore]  # noqa: PLC0415
                OTLPSpanExporter as GrpcExporter,
            )

            return cast("SpanExporter", GrpcExporter())
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )
    except ImportError:
        package = "opentelemetry-exporter-otlp-proto-grpc" if "grpc" in protocol else INSTALL_HINT
        _warn(f"the OTLP exporter for {protocol} is not installed: {package}")
        return None
    return OTLPSpanExporter()


def _warn(message: str) -> None:
    # Logging may not be configured yet (crmops sets it up per command, after this).
    print(f"warning: {message}", file=sys.stderr)  # noqa: T201
