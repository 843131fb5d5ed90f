"""The servers' TCP ports on 127.0.0.1: whether one is taken, waiting for one to free up, and
keeping the kernel from lending them to outgoing connections."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from pathlib import Path

from agora.infra.config import HOST
from agora.infra.errors import InfraError
from agora.infra.processes import Deadline, is_root, say

__all__ = ["claim_port", "port_bindable", "port_open", "reserve_ports"]


def port_open(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_bindable(port: int, host: str = HOST) -> bool:
    """Whether a server could bind host:port now: no listener has it, and no connection uses it
    as its local port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def claim_port(port: int, *, server: str, hint: str, timeout: float = 30.0) -> None:
    """Return once a server could bind 127.0.0.1:`port`. Raises `InfraError` at once if another
    program listens there, and after `timeout` seconds if a connection keeps using it as its
    local port. `hint` names the option that chooses another port."""
    if port_open(port):
        raise InfraError(
            f"port {HOST}:{port} ({server}) is taken by another program; stop it or choose "
            f"another port ({hint})"
        )
    if not port_bindable(port):
        say(f"port {HOST}:{port} ({server}) is in use by a connection; waiting for it to close")
        Deadline(timeout).poll(
            lambda: port_bindable(port), what=f"waiting for port {HOST}:{port} ({server})"
        )


_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")
_RESERVED = Path("/proc/sys/net/ipv4/ip_local_reserved_ports")


def _port_set(text: str) -> set[int]:
    ports: set[int] = set()
    for part in text.replace("\n", ",").split(","):
        low, _, high = part.strip().partition("-")
        if low.isdigit():
            ports.update(range(int(low), int(high or low) + 1))
    return ports


def reserve_ports(ports: Iterable[int]) -> None:
    """Keep the kernel from giving any of `ports` that lie in its ephemeral range to an outgoing
    connection as its local port (`net.ipv4.ip_local_reserved_ports`), so that no client can
    occupy a server's port while the server (re)starts. Needs root; otherwise, or where the
    setting cannot be written, it only says so."""
    try:
        low, high = (int(n) for n in _EPHEMERAL.read_text().split())
        current = _RESERVED.read_text().strip()
    except (OSError, ValueError):
        return
    missing = sorted({p for p in ports if low <= p <= high} - _port_set(current))
    if not missing:
        return
    listed = ",".join(str(port) for port in missing)
    if not is_root():
        say(
            f"ports {listed} lie in the kernel's ephemeral range {low}-{high}: an outgoing "
            "connection may take one while its server restarts; as root, `sysctl -w "
            f"net.ipv4.ip_local_reserved_ports={listed}` prevents it"
        )
        return
    try:
        _RESERVED.write_text(",".join(filter(None, [current, listed])) + "\n")
    except OSError as error:
        say(f"could not reserve ports {listed} (net.ipv4.ip_local_reserved_ports): {error}")
        return
    say(f"reserved ports {listed} for the servers (net.ipv4.ip_local_reserved_ports)")
