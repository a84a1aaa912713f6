"""Optional OpenTelemetry tracing: a span per request and per acquirer attempt.

Installed with the ``otel`` extra (``pip install 'payrouter[otel]'``);
without it, or with ``server.tracing: off``, every function here does
nothing.  A request's span continues the caller's trace (W3C
``traceparent``); each acquirer attempt is a client span under it, carrying
the acquirer, the operation, the outcome and, when the router moved on, the
failover reason; its context goes to the acquirer in the request headers,
so an acquirer that traces sees the same trace.

Span attributes never hold a token, a card number or a key: only names,
codes and ids payrouter minted.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from adapters.base import TRACE_HEADERS

try:  # the otel extra
    from opentelemetry import propagate, trace
    from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
except ImportError:  # pragma: no cover - exercised only without the extra
    trace = None  # type: ignore[assignment]

log = logging.getLogger(__name__)


def available() -> bool:
    return trace is not None


def otlp_provider() -> Any:
    """An SDK provider exporting over OTLP/HTTP (endpoint and headers from the
    standard OTEL_EXPORTER_OTLP_* environment variables)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = SdkProvider(resource=Resource.create({"service.name": "payrouter"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


class Tracing:
    """The tracer of one application (None: tracing off)."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self.tracer = provider.get_tracer("payrouter") if provider is not None else None

    def request(
        self, method: str, route: str, headers: Mapping[str, str]
    ) -> contextlib.AbstractContextManager[Span | None]:
        """The server span of one request (nothing at all when tracing is off:
        this runs on every request)."""
        if self.tracer is None:
            return _OFF
        return self._request(method, route, headers)

    def attempt(
        self, acquirer: str, operation: str
    ) -> contextlib.AbstractContextManager[Span | None]:
        """A client span around one acquirer call; its context is sent along."""
        if self.tracer is None:
            return _OFF
        return self._attempt(acquirer, operation)

    @contextlib.contextmanager
    def _request(self, method: str, route: str, headers: Mapping[str, str]) -> Iterator[Span]:
        assert self.tracer is not None
        parent = propagate.extract(dict(headers))
        with self.tracer.start_as_current_span(
            f"{method} {route}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "http.route": route},
        ) as span:
            yield span

    @contextlib.contextmanager
    def _attempt(self, acquirer: str, operation: str) -> Iterator[Span]:
        assert self.tracer is not None
        with self.tracer.start_as_current_span(
            f"acquirer {operation}",
            kind=SpanKind.CLIENT,
            attributes={"payrouter.acquirer": acquirer, "payrouter.operation": operation},
        ) as span:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            token = TRACE_HEADERS.set(carrier)
            try:
                yield span
            finally:
                TRACE_HEADERS.reset(token)


#: what a span context is when tracing is off (reusable: it holds no state)
_OFF: contextlib.nullcontext[None] = contextlib.nullcontext()


def note(span: Span | None, **attributes: str | int | bool | None) -> None:
    """Set attributes on a span (None: tracing is off, or no value)."""
    if span is None:
        return
    for name, value in attributes.items():
        if value is not None:
            span.set_attribute(f"payrouter.{name}" if "." not in name else name, value)


def failover(acquirer: str, reason: str) -> None:
    """The router moves on from ``acquirer``: an event on the request's span."""
    span = current_span()
    if span is not None:
        span.add_event(
            "failover", {"payrouter.from_acquirer": acquirer, "payrouter.failover_reason": reason}
        )


def failed(span: Span | None, reason: str) -> None:
    if span is not None:
        span.set_status(Status(StatusCode.ERROR, reason))


def current_span() -> Span | None:
    if trace is None:
        return None
    span = trace.get_current_span()
    return span if span.is_recording() else None
