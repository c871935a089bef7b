"""What crmops tells its operators: Prometheus metrics, OpenTelemetry spans, JSON log lines.

- `tools.observability.metrics`: the metrics (`metrics()`), what the transport, the tool
  adapters, the Slack bot and the bulk engine record in them, and the textfile writer;
- `tools.observability.calls`: the context managers those call sites use (one line each):
  `VendorRequest` (each vendor request and attempt), `observe_tool` (each tool call),
  `ImportObserver` (a bulk import's rows);
- `tools.observability.tracing`: the tracer, and the SDK set up from `OTEL_*` variables when
  the `crmops[otel]` extra is installed (`configure_tracing()`);
- `tools.observability.logs`: `configure_logging()`, text or one JSON object a line
  (`CRMOPS_LOG_FORMAT`), redacted either way;
- `tools.observability.http`: `GET /metrics` behind `CRMOPS_METRICS_TOKEN`, for both servers.

Importing this package loads nothing: prometheus_client loads when the first metric is
recorded, the OpenTelemetry SDK only when `OTEL_*` variables ask for it.
"""
