"""The entry on servers: nginx in front of every replica, its configuration made from the
service registry.

Each service's paths (`ServiceSpec.paths`, in `PathTable`'s order: the more specific template
first) go straight to that service's replicas, over kept-alive connections; the gateway process
takes the rest: the seat maps' WebSocket hub (`ENTRY_PATHS`), the web console, the OpenAPI
document and the docs, and the health, readiness and metrics of the whole deployment. Every
service process runs the entry's checks itself (`agora.gateway.edge`), so a request crosses one
Python HTTP stack, not two.

What nginx answers by itself is a problem too (RFC 9457), with the headers a service's answer
carries: no replica reachable or one failing mid-answer (502, `Retry-After`; a request that was
sent may have been applied, and nginx passes a POST on to another replica only when none was
sent), a body over the limit (413), a request no HTTP parser takes (400). A client too slow
with its headers, or pausing its body too long, is closed without an answer: nginx holds a
request until it is whole, so a slow client holds no Python process. A service's own errors
pass through untouched.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from agora.gateway.edge import API_CSP, SECURITY_HEADERS
from agora.preferences import MAX_WAIT
from agora.problems import PROBLEM_JSON, problem_body
from agora.services.spec import PathTable
from agora.settings import Settings

__all__ = ["ENTRY", "ENTRY_PATHS", "EntryLimits", "nginx_config", "settings_limits"]

ENTRY = "gateway"
"""The upstream name of the gateway process (the hub, the console, the docs, health)."""
ENTRY_PATHS = ("/ws/sessions",)
"""Paths a service owns that the gateway serves: its hub fans one stream of each session out to
every client of the replica."""
RETRY_AFTER = 1
PROBLEMS = "/.agora-entry/problems"
"""Where nginx's own answers live (internal: no request from outside reaches them)."""


@dataclasses.dataclass(frozen=True, slots=True)
class EntryLimits:
    """What bounds a request at the entry (the settings of the same names)."""

    max_body_bytes: int
    header_timeout: float
    body_timeout: float
    upstream_timeout: float


def settings_limits(settings: Settings) -> EntryLimits:
    return EntryLimits(
        max_body_bytes=settings.max_body_bytes,
        header_timeout=settings.request_header_timeout_seconds,
        body_timeout=settings.request_body_timeout_seconds,
        upstream_timeout=settings.upstream_timeout_seconds,
    )


def _problem(status: int, slug: str, title: str, detail: str) -> str:
    """A problem body as an nginx string literal (JSON, quoted for nginx's parser)."""
    body = json.dumps(problem_body(status, slug, title, detail), separators=(",", ":"))
    return "'" + body.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _seconds(value: float) -> str:
    return f"{max(1, round(value * 1000))}ms"


def _servers(urls: Sequence[str]) -> list[str]:
    servers = []
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"an upstream is http://HOST:PORT, not {url!r}")
        servers.append(f"{parts.hostname}:{parts.port}")
    return servers


def nginx_config(
    *,
    listen: str,
    upstreams: Mapping[str, Sequence[str]],
    entry: Sequence[str],
    paths: PathTable,
    limits: EntryLimits,
    prefix: Path | None = None,
) -> str:
    """nginx's whole configuration: listening on `listen` (`HOST:PORT`), each service's paths
    to its `upstreams`, the rest to the gateway processes at `entry`.

    `prefix`: the folder of nginx's pid, logs and temporary files when it runs as a child of
    `agora up` (one process, in the foreground, dying with its parent); None for a deployment
    that runs nginx its own way (the compose file's)."""
    names = {ENTRY: _servers(entry)} | {
        service: _servers(urls) for service, urls in upstreams.items() if urls
    }
    missing = sorted(set(paths.services()) - set(names))
    if missing:
        raise ValueError(f"no upstream for {', '.join(missing)}")
    lines: list[str] = []
    out = lines.append
    if prefix is not None:
        out(f"pid {prefix / 'nginx.pid'};")
        out(f"error_log {prefix / 'error.log'} warn;")
        # One process in the foreground: the supervisor's child, killed with it.
        out("daemon off;")
        out("master_process off;")
    else:
        out("worker_processes auto;")
        out("error_log stderr warn;")
    out("worker_rlimit_nofile 65536;")
    out("events { worker_connections 16384; }")
    out("http {")
    if prefix is not None:
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            out(f"  {kind}_temp_path {prefix / (kind + '_temp')};")
    out("  access_log off;")
    out("  server_tokens off;")
    out("  default_type application/octet-stream;")
    out(f"  client_max_body_size {limits.max_body_bytes};")
    out("  client_body_buffer_size 128k;")
    out(f"  client_header_timeout {_seconds(limits.header_timeout)};")
    out(f"  client_body_timeout {_seconds(limits.body_timeout)};")
    out("  keepalive_timeout 75s;")
    out("  keepalive_requests 100000;")
    out("  proxy_http_version 1.1;")
    out("  proxy_set_header Host $http_host;")
    out("  proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;")
    out("  proxy_set_header X-Forwarded-Proto $scheme;")
    out("  proxy_set_header X-Request-Id $agora_request_id;")
    out("  proxy_set_header Upgrade $http_upgrade;")
    out("  proxy_set_header Connection $agora_connection;")
    out("  proxy_connect_timeout 2s;")
    # A client that asked to wait N seconds (`Prefer: wait`) gets N more; streams send a
    # heartbeat well within it.
    out(f"  proxy_read_timeout {_seconds(limits.upstream_timeout + MAX_WAIT)};")
    out(f"  proxy_send_timeout {_seconds(limits.upstream_timeout)};")
    out("  proxy_next_upstream error timeout;")
    out("  proxy_next_upstream_tries 0;")
    # A WebSocket upgrade passes Connection on; any other request keeps the upstream's
    # connection alive for the next.
    out("  map $http_upgrade $agora_connection { default upgrade; '' ''; }")
    # The caller's request id if it is a sane one (as `agora.web` judges it), else nginx's own.
    out(
        "  map $http_x_request_id $agora_request_id "
        '{ "~^[A-Za-z0-9._:-]{1,128}$" $http_x_request_id; default $request_id; }'
    )
    for name, servers in names.items():
        out(f"  upstream {name} {{")
        for server in servers:
            out(f"    server {server} max_fails=1 fail_timeout=2s;")
        out("    keepalive 64;")
        out("  }")
    host, _, port = listen.rpartition(":")
    out("  server {")
    out(f"    listen {host}:{port} backlog=4096;" if host else f"    listen {port} backlog=4096;")
    pages = _error_pages(limits)
    # By URI, not a named location: a request whose line nginx could not parse has no URI
    # of its own to go on from.
    for status in pages:
        answered = pages[status][0]
        recode = f"={answered} " if answered != status else ""
        out(f"    error_page {status} {recode}{PROBLEMS}/{status};")
    for path in ENTRY_PATHS:
        # A stream relays through one buffer each way: a seat map's snapshot is hundreds of KB.
        out(f'    location ~ "^{_pattern(path)}(?:/|$)" {{')
        out("      proxy_buffer_size 64k; proxy_buffers 4 64k; proxy_busy_buffers_size 128k;")
        out(f"      proxy_pass http://{ENTRY};")
        out("    }")
    entry_patterns = {_pattern(path) for path in ENTRY_PATHS}
    for pattern, service in paths.patterns():
        if pattern in entry_patterns:
            continue
        out(f'    location ~ "^{pattern}(?:/|$)" {{ proxy_pass http://{service}; }}')
    out(f"    location / {{ proxy_pass http://{ENTRY}; }}")
    for status, (answered, slug, title, detail) in pages.items():
        out(f"    location = {PROBLEMS}/{status} {{")
        out("      internal;")
        out(f"      default_type {PROBLEM_JSON};")
        for header, value in {**SECURITY_HEADERS, "Content-Security-Policy": API_CSP}.items():
            out(f'      add_header {header} "{value}" always;')
        out("      add_header X-Request-Id $agora_request_id always;")
        if answered >= 500:
            out(f"      add_header Retry-After {RETRY_AFTER} always;")
        out(f"      return {answered} {_problem(answered, slug, title, detail)};")
        out("    }")
    out("  }")
    out("}")
    return "\n".join(lines) + "\n"


def _pattern(path: str) -> str:
    return PathTable.pattern_of(path)


def _error_pages(limits: EntryLimits) -> dict[int, tuple[int, str, str, str]]:
    """What nginx answers by itself, by the status it would answer: (status, slug, title,
    detail), as a service would answer the same. nginx sends its 494 (headers too large) as a
    400 whatever it is told, so the problem says 400 too; its 504 (a service too slow) goes out
    as 502: to the client, both are a replica that did not answer."""
    may_be_applied = (
        "the request may have been applied: send it again (with the same Idempotency-Key)"
    )
    return {
        400: (
            400,
            "bad-request",
            "Bad request",
            "the request line or a header is not valid HTTP (a NUL or a control character in "
            "the URL, say)",
        ),
        413: (
            413,
            "payload-too-large",
            "Payload too large",
            f"request bodies are limited to {limits.max_body_bytes} bytes",
        ),
        414: (414, "uri-too-long", "URI too long", "the request's URL is too long"),
        404: (404, "not-found", "Not found", "no route for this URL"),
        494: (400, "headers-too-large", "Headers too large", "the request's headers are too large"),
        502: (
            502,
            "bad-gateway",
            "Bad gateway",
            f"no replica of the service answered, or one failed while answering: {may_be_applied}",
        ),
        504: (
            502,
            "bad-gateway",
            "Bad gateway",
            f"the service did not answer in time: {may_be_applied}",
        ),
    }
