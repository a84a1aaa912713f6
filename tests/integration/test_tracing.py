"""OpenTelemetry tracing (the otel extra), read back from the SDK's in-memory
exporter: a server span per request continuing the caller's trace, a client
span per acquirer attempt, the failover on the request's span, and the trace
context sent to the acquirer."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from adapters.sandbox.server import SandboxServer
from tests.conftest import RouterFactory
from tests.helpers import headers, make_config

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_PARENT = "00f067aa0ba902b7"


async def test_a_failed_over_payment_is_one_trace_with_a_span_per_attempt(
    router_factory: RouterFactory, two_sandboxes: tuple[SandboxServer, SandboxServer]
) -> None:
    a, b = two_sandboxes
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    client = await router_factory(
        make_config({"sandbox-a": a.url, "sandbox-b": b.url}), tracer_provider=provider
    )
    await client.session.put(f"{a.url}/_sandbox/faults", json=[{"mode": "unavailable"}])
    resp = await client.post(
        "/v1/payments",
        json={"amount": 900, "currency": "EUR", "payment_method": "tok_visa"},
        headers={
            **headers("traced-1"),
            "traceparent": f"00-{CALLER_TRACE}-{CALLER_PARENT}-01",
        },
    )
    body = await resp.json()
    assert (resp.status, body["acquirer"]) == (201, "sandbox-b")

    spans = exporter.get_finished_spans()
    (server,) = [s for s in spans if s.kind is SpanKind.SERVER]
    attempts = [s for s in spans if s.kind is SpanKind.CLIENT]
    assert server.name == "POST /v1/payments"
    assert format(server.context.trace_id, "032x") == CALLER_TRACE  # the caller's trace goes on
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == CALLER_PARENT
    attrs: dict[str, Any] = dict(server.attributes or {})
    assert (attrs["http.response.status_code"], attrs["payrouter.payment_id"]) == (
        201,
        body["id"],
    )
    attempt_attrs = [dict(s.attributes or {}) for s in attempts]
    assert [
        (s.name, a["payrouter.acquirer"], a["payrouter.outcome"])
        for s, a in zip(attempts, attempt_attrs, strict=True)
    ] == [
        ("acquirer sale", "sandbox-a", "not_processed"),
        ("acquirer sale", "sandbox-b", "approved"),
    ]
    assert [s.parent.span_id if s.parent else None for s in attempts] == [
        server.context.span_id
    ] * 2
    (failover,) = server.events
    assert dict(failover.attributes or {}) == {
        "payrouter.from_acquirer": "sandbox-a",
        "payrouter.failover_reason": attempt_attrs[0]["payrouter.reason"],
    }

    # the acquirer received the attempt's context: same trace, the attempt as parent
    (sent,) = [r for r in b.state.wire if r.path == "/v1/charges"]
    traceparent = dict(sent.headers)["traceparent"]
    assert traceparent == (f"00-{CALLER_TRACE}-{format(attempts[1].context.span_id, '016x')}-01")
    assert "tok_visa" not in str([s.attributes for s in spans])  # no token in any span


async def test_without_a_tracer_nothing_is_traced_or_sent(
    router_factory: RouterFactory, two_sandboxes: tuple[SandboxServer, SandboxServer]
) -> None:
    a, b = two_sandboxes
    client = await router_factory(make_config({"sandbox-a": a.url, "sandbox-b": b.url}))
    resp = await client.post(
        "/v1/payments",
        json={"amount": 900, "currency": "EUR", "payment_method": "tok_visa"},
        headers=headers("untraced-1"),
    )
    assert resp.status == 201
    (sent,) = [r for r in a.state.wire if r.path == "/v1/charges"]
    assert "traceparent" not in dict(sent.headers)
