"""The bus: where actors publish messages, stamped into envelopes for the journal and listeners."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import msgspec

from autonoma.protocol import AnyMessage, Envelope

Listener = Callable[[Envelope], None]

logger = logging.getLogger("autonoma.runtime")


class Store(Protocol):
    """Where every envelope is kept (the journal); it assigns the sequence numbers."""

    def append(self, envelope: Envelope) -> None:
        """Queue the envelope for the next group commit; returns at once."""

    def append_durable(self, envelope: Envelope, timeout: float | None = None) -> int:
        """Queue the envelope and wait until its batch is committed; returns its seq."""
        ...


class Bus:
    """Stamps messages with time, sender, recipient and run id for the store and the listeners.

    Thread-safe: any actor thread may publish. Listeners run in the publisher's thread,
    so they must only hand the envelope on (an actor ``tell``, a queue put).
    """

    def __init__(self, run_id: str = "", clock: Callable[[], float] = time.time) -> None:
        self.run_id = run_id
        self._clock = clock
        self._store: Store | None = None
        self._listeners: tuple[Listener, ...] = ()
        self._lock = threading.Lock()

    def attach(self, store: Store | None) -> None:
        """Send every envelope published from now on to ``store`` (None detaches)."""
        self._store = store

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with every envelope published from now on; returns an unsubscribe."""
        with self._lock:
            self._listeners = (*self._listeners, listener)

        def unsubscribe() -> None:
            with self._lock:
                self._listeners = tuple(x for x in self._listeners if x is not listener)

        return unsubscribe

    def stamp(self, sender: str, message: AnyMessage, recipient: str = "*") -> Envelope:
        """``message`` in an envelope as `publish` makes it (seq 0), without publishing it."""
        return Envelope(
            seq=0,
            ts=self._clock(),
            run_id=self.run_id,
            sender=sender,
            recipient=recipient,
            message=message,
        )

    def publish(
        self,
        sender: str,
        message: AnyMessage,
        recipient: str = "*",
        *,
        durable: bool = False,
        timeout: float | None = None,
    ) -> Envelope:
        """Publish ``message``; with ``durable``, return only once the journal has committed it.

        Raises only what the store raises: a listener that fails (say an actor that is
        stopping) is logged and skipped, and the others still hear the envelope; one
        listener's failure never reaches the publisher.
        """
        envelope = self.stamp(sender, message, recipient)
        store = self._store
        if store is not None:
            if durable:
                seq = store.append_durable(envelope, timeout)
                envelope = msgspec.structs.replace(envelope, seq=seq)
            else:
                store.append(envelope)
        for listener in self._listeners:
            try:
                listener(envelope)
            except Exception:
                logger.debug("listener %r failed on %s", listener, envelope, exc_info=True)
        return envelope
