"""Webhooks: inbound from acquirers (verified, deduplicated, applied) and
outbound to internal subscribers (signed, at least once, from a durable queue)."""
