"""Cache adapters: one module per backend, imported on demand.

This package imports no backend library: ``from serverless_sessions.adapters.cache import redis``
is what pays for redis-py.
"""
