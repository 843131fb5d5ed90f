"""The entry: what a request from outside passes through, and what no one service serves.

* `edge`: the checks every process runs on every request (tokens, rate limits, security
  headers).
* `nginx`: the entry proxy on servers, its configuration made from the service registry.
* `app`: the gateway process behind it: the seat maps' hub, the console, the docs, health.
* `hub`: one stream of a session's seat map, fanned out to every client of the process.

Import from the submodules; importing this package imports none of them.
"""

__all__ = ["app", "edge", "hub", "nginx"]
