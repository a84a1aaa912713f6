"""Rendering problems as responses: the one place an error becomes HTTP."""

from __future__ import annotations

import orjson
from aiohttp import web

from router.problems import PROBLEM_CONTENT_TYPE, Problem
from router.telemetry import logs


def problem_response(problem: Problem) -> web.Response:
    logs.note(problem=problem.code)
    response = web.Response(
        status=problem.status,
        body=orjson.dumps(problem.body()),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=problem.headers,
    )
    if problem.status == 408:  # the rest of the body will not be waited for (RFC 9110)
        response.force_close()
    return response
