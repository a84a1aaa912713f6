"""Idempotency records, the attempt journal and payment records.

Two stores keep the same contract (:mod:`router.idempotency.protocol`): an
in-memory one for a single process (the embedded demo) and the Redis one for
production, shared by every router instance.
"""
