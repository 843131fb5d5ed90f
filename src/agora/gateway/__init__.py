"""The HTTP gateway and the state its replicas share.

* `proxy`: the entry that forwards each request to a replica of the service owning the path.
* `ratelimit`, `cache`, `fanout`: the gateway's ports (token-bucket rate limits, a read cache,
  live-update fan-out), each with a Redis adapter shared by every replica and an in-process twin
  with the same semantics (see docs/shared-state.md).

Import from the submodules; importing this package imports none of them.
"""

__all__ = ["cache", "fanout", "proxy", "ratelimit"]
