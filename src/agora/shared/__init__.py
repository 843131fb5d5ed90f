"""The state processes share: ports below the services, each with a Redis adapter (shared by
every process) and an in-process twin with the same semantics, in modules of the same names.

* `cache`: a read cache of rendered reads, dropped by key or generation.
* `ratelimit`: token buckets keyed by caller.
* `fanout`: live-update broadcast on named channels.
* `revocations`: revoked sessions every token verifier consults.

Each package's `__init__` is the port (a Protocol whose docstrings are the contract);
`redis` and `in_process` are its adapters. `tests/integration/test_shared_state.py` holds
every adapter to its port's text.
"""
