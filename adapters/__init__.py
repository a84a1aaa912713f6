"""Acquirer adapters: one module per acquirer, all speaking adapters.base."""
