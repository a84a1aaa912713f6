"""``payrouter config explain``: which acquirers a sample payment would try.

Runs the real routing table on fresh acquirer state (all healthy, breakers
closed), so the answer is what a newly started router would do.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from router.acquirers import RoutingState
from router.breakers import AcquirerBreaker
from router.config import Config, ConfigError
from router.health import AcquirerHealth
from router.models import CreatePayment
from router.orchestrator import route_input
from router.routing import RoutePlan, RoutingTable


def explain(config: Config, payment: dict[str, Any]) -> tuple[RoutePlan, RoutingTable]:
    """``payment`` is a POST /v1/payments body plus an optional ``caller``."""
    data = dict(payment)
    caller = str(data.pop("caller", next(iter(config.callers))))
    payment.setdefault("caller", caller)
    try:
        request = CreatePayment.model_validate(data)
    except ValidationError as exc:
        problems = [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()]
        raise ConfigError(problems, "payment") from None
    states = {
        name: RoutingState(name, AcquirerBreaker(name), AcquirerHealth(), acq.weight, acq.priority)
        for name, acq in config.acquirers.items()
    }
    table = RoutingTable(config.routing, states)
    return table.plan(route_input(caller, request)), table


def render(plan: RoutePlan, table: RoutingTable, payment: dict[str, Any]) -> str:
    lines = [
        f"payment: {payment.get('amount')} {payment.get('currency')} "
        f"{payment.get('payment_method')} (caller {payment['caller']})",
        f"rule:    {plan.rule}   balancer: {plan.balancer}",
        "tries, in order:",
    ]
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
