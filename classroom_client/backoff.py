"""How long a classroom waits between attempts to reach the lesson server: a jittered, capped back-off.

The cap keeps a classroom's return within ~2 s of the server being back (after a restart every
classroom is back within 5 s). The jitter spreads the classrooms a restart cut off together over a
second, so they do not all knock in the same instant; one server holds a lesson's nine classrooms
and its observers easily. Many servers behind one balancer would want a longer spread.
"""

from __future__ import annotations

import random

RECONNECT_DELAY_S = 0.5  # the first wait
RECONNECT_DELAY_MAX_S = 1.5  # the longest wait before the jitter
RECONNECT_JITTER_S = 0.5  # each wait is moved by up to this much, either way
# A listening classroom whose node died goes to another node of the cluster at once (that node is
# up): the first knock comes within FAILOVER_DELAY_S ± FAILOVER_JITTER_S, so it resumes within 3 s.
FAILOVER_DELAY_S = 0.2
FAILOVER_JITTER_S = 0.2


class Backoff:
    """0.5 s, 1 s, then 1.5 s for good, each ± RECONNECT_JITTER_S (never below 0.1 s)."""

    def __init__(self, first_s: float = RECONNECT_DELAY_S, max_s: float = RECONNECT_DELAY_MAX_S,
                 jitter_s: float = RECONNECT_JITTER_S) -> None:
        self.first_s = first_s
        self.max_s = max_s
        self.jitter_s = jitter_s
        self.attempt = 0

    def next_delay(self) -> float:
        delay = min(self.first_s * 2 ** min(self.attempt, 16), self.max_s)
        self.attempt += 1
        return max(0.1, delay + random.uniform(-self.jitter_s, self.jitter_s))

    def reset(self) -> None:
        self.attempt = 0
