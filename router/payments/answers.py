"""What an operation answers, derived from its records and nothing else.

The answer is computed from the records as they are committed, in the same
step that stores it, so a stored answer and the records can never disagree:
no "202 pending" stored beside a captured payment, no "409 not allowed"
for a capture that succeeded.
"""

from __future__ import annotations

from router.payments.context import ApiResult
from router.payments.models import payment_body, refund_body
from router.payments.records import OperationRecord, PaymentRecord, RefundRecord
from router.payments.states import OperationState, PaymentState
from router.problems import PROBLEM_CONTENT_TYPE, Problem

S, OS = PaymentState, OperationState


def payment_view(payment: PaymentRecord, status: int, *, final: bool) -> ApiResult:
    return ApiResult(
        status,
        payment_body(payment),
        {"Location": f"/v1/payments/{payment.id}"},
        final=final,
    )


def problem_answer(problem: Problem) -> ApiResult:
    return ApiResult(
        problem.status,
        problem.body(),
        dict(problem.headers),
        content_type=PROBLEM_CONTENT_TYPE,
        final=not problem.retryable,
    )


def create_answer(payment: PaymentRecord) -> ApiResult:
    """201 once the acquirer answered, 202 while it may still change."""
    if payment.state in (S.PENDING, S.UNKNOWN):
        return payment_view(payment, 202, final=False)
    if payment.state is S.FAILED:
        if payment.failure_reason == "integration_error":
            return problem_answer(
                Problem(
                    502,
                    "acquirer_integration_error",
                    f"acquirer {payment.acquirer or ''} refused our request; operators are alerted",
                    payment_id=payment.id,
                )
            )
        return problem_answer(
            Problem(
                503,
                "no_acquirer_available",
                "no acquirer could take the payment; nothing was charged. Retry with the "
                "same Idempotency-Key",
                retryable=True,
                headers={"Retry-After": "2"},
                payment_id=payment.id,
            )
        )
    return payment_view(payment, 201, final=True)


def operation_answer(payment: PaymentRecord, op: OperationRecord) -> ApiResult:
    """A capture or void: 200 done, 202 in progress, 402 declined, 503 not processed."""
    if op.unresolved:
        return payment_view(payment, 202, final=False)
    if op.state is OS.SUCCEEDED:
        return payment_view(payment, 200, final=True)
    if op.state is OS.DECLINED:
        return problem_answer(
            Problem(
                402,
                f"{op.operation}_declined",
                f"the acquirer declined the {op.operation}",
                decline_code=op.decline.code if op.decline else None,
                payment_id=payment.id,
            )
        )
    if op.attempt.outcome is not None and op.attempt.outcome.value == "integration_error":
        return problem_answer(
            Problem(
                502,
                "acquirer_integration_error",
                f"acquirer {op.attempt.acquirer} refused our {op.operation} request "
                f"({op.attempt.reason})",
                payment_id=payment.id,
            )
        )
    return problem_answer(
        Problem(
            503,
            "acquirer_unavailable",
            f"{op.attempt.acquirer} holds this payment and did not process the {op.operation} "
            f"({op.attempt.reason}); retry with the same Idempotency-Key",
            retryable=True,
            headers={"Retry-After": "2"},
            payment_id=payment.id,
        )
    )


def refund_answer(refund: RefundRecord) -> ApiResult:
    """201 succeeded or declined, 202 pending or unknown, 503/502 not processed."""
    if refund.state is OS.FAILED:
        attempt = refund.attempt
        if (
            attempt is not None
            and attempt.outcome is not None
            and (attempt.outcome.value == "integration_error")
        ):
            return problem_answer(
                Problem(
                    502,
                    "acquirer_integration_error",
                    f"acquirer {refund.acquirer} refused our refund request ({attempt.reason})",
                    refund_id=refund.id,
                )
            )
        return problem_answer(
            Problem(
                503,
                "acquirer_unavailable",
                f"{refund.acquirer} holds this payment and did not process the refund; retry "
                "with the same Idempotency-Key",
                retryable=True,
                headers={"Retry-After": "2"},
                refund_id=refund.id,
            )
        )
    return ApiResult(
        202 if refund.unresolved else 201,
        refund_body(refund),
        {"Location": f"/v1/refunds/{refund.id}"},
        final=not refund.unresolved,
    )
