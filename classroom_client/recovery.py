"""A classroom's lost media connection, made again on the same session.

A publishing or receiving connection that failed, or was closed under us (a DTLS close, ICE
consent expired, an exception inside aiortc), or whose server side the server says it lost
(`media_lost`), while the socket.io session stays: that connection alone is made again, at once,
then with the connect loop's waits (`backoff`). After MEDIA_ATTEMPTS failed attempts the session
itself starts again, as for any session that cannot be set up.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from classroom_client.backoff import Backoff

logger = logging.getLogger(__name__)

MEDIA_ATTEMPTS = 3
# refusals that say the connection is not wanted any more (sent back to listening, the lesson went)
FINAL_CODES = frozenset({"forbidden", "not_joined", "not_found"})


class Refused(RuntimeError):
    """The server answered a request with an error (its `code` says which)."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class Session(Protocol):
    """What recovery needs of the classroom's session (`classroom_client.session`)."""

    setup_lock: asyncio.Lock

    def stopping(self) -> bool: ...

    def still_on(self, session: int) -> bool:
        """Session number `session` is the live, joined one."""

    def has(self, what: str) -> bool:
        """A `what` ("publish" | "subscribe") connection is there (made or being made)."""

    async def connect_again(self, what: str) -> None: ...

    def let_go(self, what: str) -> None:
        """Drop (and close) the `what` connection a failed attempt left half-made."""

    def start_over(self) -> None:
        """Drop the session, to make it again from the start (beside us: dropping it ends us)."""


async def recover(session: Session, what: str, number: int) -> bool:
    """Make the `what` connection of session `number` again; True once it is."""
    backoff = Backoff()
    while not session.stopping():
        async with session.setup_lock:
            if not session.still_on(number):
                return False  # that session is gone: the next one's setup makes every connection
            if session.has(what):
                return False  # made again already
            try:
                await session.connect_again(what)
                if session.has(what):  # (not lost again while it was being made)
                    logger.info("%s connection made again", what)
                    return True
            except Refused as exc:
                session.let_go(what)
                if exc.code in FINAL_CODES:
                    logger.warning("%s again refused: %s", what, exc)
                    return False
                logger.warning("%s again refused (%s); retrying", what, exc)
            except Exception as exc:
                session.let_go(what)
                logger.warning("%s again failed (%s); retrying", what, exc)
        if backoff.attempt + 1 >= MEDIA_ATTEMPTS:
            logger.warning("%s: %d attempts failed; starting the session again", what, MEDIA_ATTEMPTS)
            session.start_over()
            return False
        await asyncio.sleep(backoff.next_delay())
    return False
