"""Agora's event platform: envelope, outbox, inbox, relay, consumer runner and the bus port."""

from agora.messaging.clocks import CLOCK_LEEWAY, PeerClocks
from agora.messaging.deadletters import DeadLetter, list_dead_letters, replay_dead_letters
from agora.messaging.envelope import DecodeError, Envelope, Event, EventRegistry, new_id, utcnow
from agora.messaging.faults import (
    Backoff,
    DependencyHealth,
    PermanentError,
    is_transient,
    transient_fault,
)
from agora.messaging.inbox import add_inbox_table, claim_inbox
from agora.messaging.loop import BackgroundLoop
from agora.messaging.metrics import MessagingMetrics
from agora.messaging.outbox import OutboxRelay, add_outbox_table, outbox_backlog, write_outbox
from agora.messaging.ports import ConsumedRecord, Consumer, MessageLog, Record, TopicPartition
from agora.messaging.runner import (
    BatchPreparation,
    ConsumerRunner,
    EventHandlers,
    Handler,
    RetryPolicy,
    dead_letter_topic,
)
from agora.messaging.service import ConsumerOptions, Infrastructure, Service, ServicePlatform
from agora.messaging.sql import (
    Database,
    DecimalText,
    LockTimeout,
    UtcDateTime,
    insert_new,
    set_lock_timeout,
    sqlite_url,
)
from agora.messaging.unit_of_work import UnitOfWork

__all__ = [
    "CLOCK_LEEWAY",
    "BackgroundLoop",
    "Backoff",
    "BatchPreparation",
    "ConsumedRecord",
    "Consumer",
    "ConsumerOptions",
    "ConsumerRunner",
    "Database",
    "DeadLetter",
    "DecimalText",
    "DecodeError",
    "DependencyHealth",
    "Envelope",
    "Event",
    "EventHandlers",
    "EventRegistry",
    "Handler",
    "Infrastructure",
    "LockTimeout",
    "MessageLog",
    "MessagingMetrics",
    "OutboxRelay",
    "PeerClocks",
    "PermanentError",
    "Record",
    "RetryPolicy",
    "Service",
    "ServicePlatform",
    "TopicPartition",
    "UnitOfWork",
    "UtcDateTime",
    "add_inbox_table",
    "add_outbox_table",
    "claim_inbox",
    "dead_letter_topic",
    "insert_new",
    "is_transient",
    "list_dead_letters",
    "new_id",
    "outbox_backlog",
    "replay_dead_letters",
    "set_lock_timeout",
    "sqlite_url",
    "transient_fault",
    "utcnow",
    "write_outbox",
]
