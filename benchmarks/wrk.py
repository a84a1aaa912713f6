"""A closed loop driven by wrk: a load generator written in C that costs a
small fraction of the Python one (benchmarks.loadgen), so on a 2-CPU machine
the CPU it leaves on the shared core goes to the sandbox and Redis, and the
process under measurement is the one that saturates.

Each request carries its own Idempotency-Key (a counter per wrk thread under
a prefix per run); a Lua script counts the answers that paid (200/201).
``make bench`` installs wrk with apt-get where it can; without it the
per-core scenario falls back to the Python generator and says so.
"""

from __future__ import annotations

import asyncio
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import orjson

from benchmarks.loadgen import Target

_SCRIPT = """
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  counter = 0
  paid = 0
  prefix = args[1] .. "-" .. id .. "-"
end
function request()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = prefix .. counter
  return wrk.format("POST", nil, nil, nil)
end
function response(status, headers, body)
  if status == 200 or status == 201 then paid = paid + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("paid") end
  io.write(string.format("WRK paid=%d answered=%d p50=%d p99=%d\\n", total, summary.requests,
    latency:percentile(50), latency:percentile(99)))
end
"""
_RESULT = re.compile(r"WRK paid=(\d+) answered=(\d+) p50=(\d+) p99=(\d+)")


@dataclass(frozen=True)
class Counted:
    paid: int
    answered: int
    #: wrk's latency percentiles of the run, in ms (see :func:`counted_from`)
    p50_ms: float
    p99_ms: float


def available() -> bool:
    return shutil.which("wrk") is not None


def _lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


async def closed_loop(
    target: Target, connections: int, duration_s: float, label: str, workdir: str
) -> Counted:
    """``connections`` callers on one wrk thread for ``duration_s`` (rounded
    up to whole seconds, as wrk takes them) against the target's first URL."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed")
    body = orjson.dumps(target.body).decode()
    headers = {**target.headers, "Content-Type": "application/json"}
    setup = "".join(
        f"wrk.headers[ {_lua_string(k)} ] = {_lua_string(v)}\n" for k, v in headers.items()
    )
    script = f"wrk.method = 'POST'\nwrk.body = {_lua_string(body)}\n{setup}{_SCRIPT}"
    path = Path(workdir) / f"{label}.lua"
    path.write_text(script)  # a few hundred bytes, before the run: nothing to wait for
    proc = await asyncio.create_subprocess_exec(
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{math.ceil(duration_s)}s",
        "--timeout",
        "5s",
        "-s",
        str(path),
        target.urls[0] + target.path,
        "--",
        label,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    printed, _ = await proc.communicate()
    counted = counted_from(printed.decode(errors="replace"))
    if proc.returncode != 0 or counted is None:
        raise RuntimeError(f"wrk failed: {printed.decode(errors='replace')[-500:]}")
    return counted


def counted_from(printed: str) -> Counted | None:
    """The script's summary line.  wrk's percentiles are corrected for
    coordinated omission (a stall also counts once for each request the
    caller would have sent meanwhile, at the run's mean interval), so a
    side that answers faster pays more for the same stall."""
    found = _RESULT.search(printed)
    if found is None:
        return None
    return Counted(
        paid=int(found[1]),
        answered=int(found[2]),
        p50_ms=int(found[3]) / 1000,
        p99_ms=int(found[4]) / 1000,
    )
