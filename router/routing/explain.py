"""``payrouter config explain``: which acquirers a sample payment would try.

Runs the real routing table on fresh acquirer state (all healthy, breakers
closed), so the answer is what a newly started router would do.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from router.config import Config, ConfigError
from router.payments import methods
from router.payments.models import CreatePayment
from router.routing.acquirers import RoutingState
from router.routing.breakers import AcquirerBreaker
from router.routing.health import AcquirerHealth
from router.routing.rules import route_input
from router.routing.table import RoutePlan, RoutingTable


def explain(
    config: Config, payment: dict[str, Any]
) -> tuple[RoutePlan, RoutingTable, dict[str, str | None]]:
    """``payment`` is a POST /v1/payments body plus an optional ``caller`` and
    ``mode`` (``test``, the default, or ``live``: which keys' acquirers)."""
    data = dict(payment)
    caller = str(data.pop("caller", next(iter(config.callers))))
    live = data.pop("mode", "test") == "live"
    payment.setdefault("caller", caller)
    try:
        request = CreatePayment.model_validate(data)
    except ValidationError as exc:
        problems = [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()]
        raise ConfigError(problems, "payment") from None
    states = {
        name: RoutingState(
            name,
            acq.kind,
            AcquirerBreaker(name),
            AcquirerHealth(acq.health),
            acq.weight,
            acq.priority,
            test_mode=acq.test_mode,
        )
        for name, acq in config.acquirers.items()
    }
    table = RoutingTable(config.routing, states)
    kinds = {n: a.kind for n, a in config.acquirers.items() if a.test_mode is not live}
    usable = methods.eligibility(request, kinds, config.vaults)
    refused = {name: why for name, why in usable.items() if why is not None}
    inp = route_input(
        caller, request, live, methods=methods.labels(request.method), ineligible=refused
    )
    return table.plan(inp), table, usable


def _method(payment: dict[str, Any]) -> str:
    method = payment.get("payment_method")
    if isinstance(method, dict):
        return str(method.get("type"))
    return f"sandbox token {method}"


def render(
    plan: RoutePlan,
    table: RoutingTable,
    payment: dict[str, Any],
    usable: dict[str, str | None] | None = None,
) -> str:
    lines = [
        f"payment: {payment.get('amount')} {payment.get('currency')} "
        f"{_method(payment)} (caller {payment['caller']})",
    ]
    if usable:
        lines.append("payment method, per acquirer:")
        lines += [
            f"  {name:<22} {'eligible' if why is None else 'not eligible: ' + why}"
            for name, why in usable.items()
        ]
    lines += [f"rule:    {plan.rule}   balancer: {plan.balancer}", "tries, in order:"]
    rule = next((r for r in table.config.rules if r.name == plan.rule), None)
    fallback = set(rule.fallback) if rule else set()
    for index, name in enumerate(plan.candidates, 1):
        state = table.acquirers[name]
        role = "fallback" if name in fallback else "pool"
        lines.append(
            f"  {index}. {name:<20} {role:<8} weight {state.weight:<4} priority {state.priority}"
        )
    if not plan.candidates:
        lines.append("  (none: the payment would be refused with no_acquirer_available)")
    lines += [f"note: {note}" for note in plan.notes]
    return "\n".join(lines)
