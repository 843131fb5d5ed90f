"""Prometheus metrics of the event platform, registered on a registry the runtime creates."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from agora.messaging.clocks import PeerClocks

__all__ = ["MessagingMetrics"]


class MessagingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.outbox_backlog = Gauge(
            "agora_outbox_backlog", "Outbox rows not yet published", ["service"], registry=registry
        )
        self.outbox_published = Counter(
            "agora_outbox_published", "Outbox rows published", ["service"], registry=registry
        )
        self.consumer_lag = Gauge(
            "agora_consumer_lag",
            "Records not yet committed by a consumer group",
            ["group", "topic"],
            registry=registry,
        )
        self.events_handled = Counter(
            "agora_events_handled",
            "Events applied by a consumer group",
            ["group"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "agora_dead_letters",
            "Messages sent to a dead-letter topic",
            ["group", "topic"],
            registry=registry,
        )
        self.handler_retries = Counter(
            "agora_handler_retries",
            "Failed handler attempts retried",
            ["group"],
            registry=registry,
        )
        self.dependency_up = Gauge(
            "agora_dependency_up",
            "1 while a component reaches a dependency, 0 while it waits for it to answer",
            ["dependency", "component"],
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "agora_consumer_batch_seconds",
            "Time to apply one fetched batch",
            ["group"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        # One per process: its consumers and its token verifier report the same peers.
        self.peer_clocks = PeerClocks(
            Gauge(
                "agora_peer_clock_ahead_seconds",
                "How far ahead of this process's clock a peer's runs, by the timestamps it sends "
                "(events' occurred_at by source service, tokens' iat as identity), 0 if not",
                ["peer"],
                registry=registry,
            )
        )
