"""The production store: Redis (single, Sentinel or Cluster, chosen by URL).

Every state change is one Lua script on keys sharing one hash tag, so it is
atomic and Cluster-safe.  Leases are measured on the Redis server's clock
(``TIME``), so router instances with skewed clocks agree on who owns what.

Every script is safe to run twice: the client retries a command whose reply
was lost, and the second run must not be read as somebody else's work.

* claim         -- the same owner token finds the record already its own;
* write_attempt -- an identical last journal line is not appended again;
* settle        -- LSET of the same line;
* complete      -- the same stored response is accepted as done;
* replace       -- compare-and-set on the version; the caller's change
                   functions are idempotent, so a conflict after a lost
                   reply re-reads and finds nothing left to do.

Redis errors become :class:`StoreUnavailable` at one boundary: mutating calls
then fail closed (503) and nothing is sent to an acquirer.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
import redis.exceptions as rexc
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel
from redis.backoff import ExponentialBackoff

from router import redis_keys
from router.config import StoreConfig
from router.idempotency.protocol import (
    AlreadyExists,
    Busy,
    Claimed,
    ClaimOutcome,
    LeaseLost,
    Mismatch,
    Replay,
    StoreUnavailable,
    VersionConflict,
)
from router.records import Attempt, IdemRecord, PaymentRecord, RefundRecord, StoredResponse

_NOW = (
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)"
)

CLAIM = f"""
{_NOW}
local fp, owner, lease, rid, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local rec = redis.call('HMGET', KEYS[1], 'fp', 'rid', 'owner', 'lease', 'resp')
if not rec[1] then
  redis.call('HSET', KEYS[1], 'fp', fp, 'rid', rid, 'owner', owner, 'lease', now + lease)
  redis.call('PEXPIRE', KEYS[1], ttl)
  return {{'claimed', rid, '0', {{}}}}
end
if rec[1] ~= fp then return {{'mismatch'}} end
if rec[5] then return {{'replay', rec[5]}} end
local journal = redis.call('LRANGE', KEYS[2], 0, -1)
if rec[3] == owner then return {{'claimed', rec[2], '0', journal}} end
if tonumber(rec[4]) > now then return {{'busy', tostring(tonumber(rec[4]) - now)}} end
redis.call('HSET', KEYS[1], 'owner', owner, 'lease', now + lease)
return {{'claimed', rec[2], '1', journal}}
"""

WRITE_ATTEMPT = f"""
{_NOW}
local rec = redis.call('HMGET', KEYS[1], 'owner', 'resp', 'lease')
if rec[1] ~= ARGV[1] or rec[2] then return -1 end
local last = redis.call('LINDEX', KEYS[2], -1)
local index
if last == ARGV[2] then
  index = redis.call('LLEN', KEYS[2]) - 1
else
  index = redis.call('RPUSH', KEYS[2], ARGV[2]) - 1
end
local until_ms = now + tonumber(ARGV[3])
if until_ms > tonumber(rec[3]) then redis.call('HSET', KEYS[1], 'lease', until_ms) end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return index
"""

SETTLE_ATTEMPT = """
local rec = redis.call('HMGET', KEYS[1], 'owner', 'resp')
if rec[1] ~= ARGV[1] or rec[2] then return 0 end
redis.call('LSET', KEYS[2], tonumber(ARGV[2]), ARGV[3])
return 1
"""

COMPLETE = """
local rec = redis.call('HMGET', KEYS[1], 'owner', 'resp')
if rec[2] then
  if rec[2] == ARGV[2] then return 1 end
  return 0
end
if rec[1] ~= ARGV[1] then return 0 end
if ARGV[4] ~= '' then redis.call('LSET', KEYS[2], tonumber(ARGV[4]), ARGV[5]) end
redis.call('HSET', KEYS[1], 'resp', ARGV[2], 'owner', '', 'lease', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
return 1
"""

RELEASE = """
local rec = redis.call('HMGET', KEYS[1], 'owner', 'resp')
if rec[1] ~= ARGV[1] or rec[2] then return 0 end
if ARGV[2] ~= '' then redis.call('LSET', KEYS[2], tonumber(ARGV[2]), ARGV[3]) end
redis.call('HSET', KEYS[1], 'owner', '', 'lease', 0)
return 1
"""

EXTEND_LEASE = f"""
{_NOW}
local rec = redis.call('HMGET', KEYS[1], 'owner', 'resp', 'lease')
if rec[1] ~= ARGV[1] or rec[2] then return 0 end
local until_ms = now + tonumber(ARGV[2])
if until_ms > tonumber(rec[3]) then redis.call('HSET', KEYS[1], 'lease', until_ms) end
return 1
"""

CREATE_DOC = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

REPLACE_DOC = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
if cjson.decode(current)['version'] ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""

#: errors that mean "the store is not reachable right now"
UNAVAILABLE: tuple[type[Exception], ...] = (
    rexc.ConnectionError,
    rexc.TimeoutError,
    rexc.ReadOnlyError,
    rexc.ClusterDownError,
    rexc.TryAgainError,
    rexc.RedisClusterException,
    MasterNotFoundError,
    OSError,
)


@contextlib.asynccontextmanager
async def redis_boundary() -> AsyncIterator[None]:
    try:
        yield
    except UNAVAILABLE as exc:
        raise StoreUnavailable(f"redis: {type(exc).__name__}: {exc}") from exc


class LuaScript:
    """EVALSHA with a fallback to EVAL; works the same on Cluster (keys route it)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, client: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except rexc.NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *args)


_claim = LuaScript(CLAIM)
_write_attempt = LuaScript(WRITE_ATTEMPT)
_settle = LuaScript(SETTLE_ATTEMPT)
_complete = LuaScript(COMPLETE)
_release = LuaScript(RELEASE)
_extend = LuaScript(EXTEND_LEASE)
_create = LuaScript(CREATE_DOC)
_replace = LuaScript(REPLACE_DOC)


def _client_options(op_timeout_s: float, password: str | None) -> dict[str, Any]:
    return {
        "decode_responses": True,
        "socket_timeout": op_timeout_s,
        "socket_connect_timeout": op_timeout_s,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2),
        "retry_on_error": [rexc.ConnectionError, rexc.TimeoutError],
        "password": password,
    }


def _hosts(netloc: str, default_port: int) -> list[tuple[str, int]]:
    hosts = []
    for part in netloc.rsplit("@", 1)[-1].split(","):
        host, _, port = part.partition(":")
        hosts.append((host, int(port or default_port)))
    return hosts


def client_from_url(url: str, op_timeout_s: float = 1.0, password: str | None = None) -> Any:
    """redis://, rediss://, redis+sentinel://h:p,h:p/service[/db], redis+cluster://h:p,h:p"""
    parts = urlsplit(url)
    password = password or (unquote(parts.password) if parts.password else None)
    options = _client_options(op_timeout_s, password)
    if parts.scheme in ("redis", "rediss"):
        return aioredis.Redis.from_url(url, **options)
    if parts.scheme == "redis+cluster":
        options.pop("retry_on_error")
        nodes = [ClusterNode(h, p) for h, p in _hosts(parts.netloc, 6379)]
        return RedisCluster(startup_nodes=nodes, **options)
    if parts.scheme == "redis+sentinel":
        segments = [s for s in parts.path.split("/") if s]
        if not segments:
            raise ValueError("redis+sentinel URL needs a service name: /<service>[/<db>]")
        service, db = segments[0], int(segments[1]) if len(segments) > 1 else 0
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            _hosts(parts.netloc, 26379),
            socket_timeout=op_timeout_s,
            socket_connect_timeout=op_timeout_s,
        )
        return sentinel.master_for(service, db=db, **options)
    raise ValueError(f"unsupported Redis URL scheme {parts.scheme!r}")


def _settle_args(settle: tuple[int, Attempt] | None) -> tuple[str, str]:
    if settle is None:
        return "", ""
    return str(settle[0]), settle[1].model_dump_json()


class RedisStore:
    def __init__(self, client: Any, ttl_ms: int) -> None:
        self.client = client
        self.ttl_ms = ttl_ms

    @classmethod
    def from_config(cls, config: StoreConfig) -> RedisStore:
        assert config.url is not None
        password = config.password.get() if config.password else None
        return cls(client_from_url(config.url, config.op_timeout_s, password), config.ttl_s * 1000)

    # --------------------------------------------------------------- idempotency
    async def claim(
        self, scope: str, fingerprint: str, owner: str, lease_ms: int, resource_id: str
    ) -> ClaimOutcome:
        keys = (redis_keys.idem(scope), redis_keys.attempts(scope))
        async with redis_boundary():
            reply = await _claim(
                self.client, keys, (fingerprint, owner, lease_ms, resource_id, self.ttl_ms)
            )
        kind = reply[0]
        if kind == "mismatch":
            return Mismatch()
        if kind == "replay":
            return Replay(StoredResponse.model_validate_json(reply[1]))
        if kind == "busy":
            return Busy(int(reply[1]))
        record = IdemRecord(
            fingerprint=fingerprint,
            resource_id=reply[1],
            owner=owner,
            attempts=[Attempt.model_validate_json(line) for line in reply[3]],
        )
        return Claimed(record, taken_over=reply[2] == "1")

    async def write_attempt(self, scope: str, owner: str, attempt: Attempt, lease_ms: int) -> int:
        keys = (redis_keys.idem(scope), redis_keys.attempts(scope))
        async with redis_boundary():
            index = await _write_attempt(
                self.client, keys, (owner, attempt.model_dump_json(), lease_ms, self.ttl_ms)
            )
        if int(index) < 0:
            raise LeaseLost(scope)
        return int(index)

    async def settle_attempt(self, scope: str, owner: str, index: int, attempt: Attempt) -> None:
        keys = (redis_keys.idem(scope), redis_keys.attempts(scope))
        async with redis_boundary():
            ok = await _settle(self.client, keys, (owner, index, attempt.model_dump_json()))
        if not int(ok):
            raise LeaseLost(scope)

    async def complete(
        self,
        scope: str,
        owner: str,
        response: StoredResponse,
        settle: tuple[int, Attempt] | None = None,
    ) -> None:
        keys = (redis_keys.idem(scope), redis_keys.attempts(scope))
        async with redis_boundary():
            ok = await _complete(
                self.client,
                keys,
                (owner, response.model_dump_json(), self.ttl_ms, *_settle_args(settle)),
            )
        if not int(ok):
            raise LeaseLost(scope)

    async def release(
        self, scope: str, owner: str, settle: tuple[int, Attempt] | None = None
    ) -> None:
        keys = (redis_keys.idem(scope), redis_keys.attempts(scope))
        async with redis_boundary():
            await _release(self.client, keys, (owner, *_settle_args(settle)))

    async def extend_lease(self, scope: str, owner: str, lease_ms: int) -> bool:
        async with redis_boundary():
            ok = await _extend(self.client, (redis_keys.idem(scope),), (owner, lease_ms))
        return bool(int(ok))

    async def get_idem(self, scope: str) -> IdemRecord | None:
        async with redis_boundary():
            data = await self.client.hgetall(redis_keys.idem(scope))
            lines = await self.client.lrange(redis_keys.attempts(scope), 0, -1)
        if not data:
            return None
        return IdemRecord(
            fingerprint=data["fp"],
            resource_id=data["rid"],
            owner=data.get("owner") or None,
            lease_until_ms=int(data.get("lease") or 0),
            response=StoredResponse.model_validate_json(data["resp"]) if "resp" in data else None,
            attempts=[Attempt.model_validate_json(line) for line in lines],
        )

    # ------------------------------------------------------------------ records
    async def _create_doc(self, key: str, doc: str) -> None:
        async with redis_boundary():
            created = await _create(self.client, (key,), (doc, self.ttl_ms))
        if not int(created):
            raise AlreadyExists(key)

    async def _replace_doc(self, key: str, doc: str, expected_version: int) -> None:
        async with redis_boundary():
            ok = await _replace(self.client, (key,), (expected_version, doc, self.ttl_ms))
        if not int(ok):
            raise VersionConflict(key)

    async def _get_doc(self, key: str) -> str | None:
        async with redis_boundary():
            doc: str | None = await self.client.get(key)
        return doc

    async def create_payment(self, payment: PaymentRecord) -> None:
        await self._create_doc(redis_keys.payment(payment.id), payment.model_dump_json())

    async def get_payment(self, payment_id: str) -> PaymentRecord | None:
        doc = await self._get_doc(redis_keys.payment(payment_id))
        return PaymentRecord.model_validate_json(doc) if doc is not None else None

    async def replace_payment(self, payment: PaymentRecord, expected_version: int) -> None:
        await self._replace_doc(
            redis_keys.payment(payment.id), payment.model_dump_json(), expected_version
        )

    async def create_refund(self, refund: RefundRecord) -> None:
        await self._create_doc(redis_keys.refund(refund.id), refund.model_dump_json())

    async def get_refund(self, refund_id: str) -> RefundRecord | None:
        doc = await self._get_doc(redis_keys.refund(refund_id))
        return RefundRecord.model_validate_json(doc) if doc is not None else None

    async def replace_refund(self, refund: RefundRecord, expected_version: int) -> None:
        await self._replace_doc(
            redis_keys.refund(refund.id), refund.model_dump_json(), expected_version
        )

    # ------------------------------------------------------------------ events
    async def event_seen(self, acquirer: str, event_id: str) -> bool:
        async with redis_boundary():
            return bool(await self.client.exists(redis_keys.event(acquirer, event_id)))

    async def remember_event(self, acquirer: str, event_id: str) -> None:
        async with redis_boundary():
            await self.client.set(redis_keys.event(acquirer, event_id), "1", px=self.ttl_ms)

    # --------------------------------------------------------------- unresolved
    async def mark_unresolved(self, ref: str, due_ms: int) -> None:
        async with redis_boundary():
            await self.client.zadd(redis_keys.UNRESOLVED, {ref: due_ms})

    async def clear_unresolved(self, ref: str) -> None:
        async with redis_boundary():
            await self.client.zrem(redis_keys.UNRESOLVED, ref)

    async def due_unresolved(self, now_ms: int, limit: int) -> list[str]:
        async with redis_boundary():
            refs: list[str] = await self.client.zrangebyscore(
                redis_keys.UNRESOLVED, "-inf", now_ms, start=0, num=limit
            )
        return refs

    async def ping(self) -> None:
        async with redis_boundary():
            await self.client.ping()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.aclose()
