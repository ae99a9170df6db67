"""Lesson-study settings, read once when the server starts (environment variables, all optional)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class StudyConfig:
    analysis_enabled: bool = True  # TWINCLASS_ANALYSIS=0: no automatic classroom analysis
    analysis_poll_s: float = 10.0  # how often to look for archives without an analysis
    analysis_nice: int = 10  # the analysis process yields the CPU to live lessons
    st_interval_s: float = 30.0  # default S-T sampling interval
    patrol_token_ttl_s: float = 4 * 3600  # observer tokens the patrol wall hands its tiles

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StudyConfig:
        env = os.environ if env is None else env

        def num(name: str, default: float) -> float:
            value = env.get(name)
            return float(value) if value not in (None, "") else default

        enabled = env.get("TWINCLASS_ANALYSIS", "1").lower() not in ("0", "false", "no", "off")
        return cls(
            analysis_enabled=enabled,
            analysis_poll_s=num("TWINCLASS_ANALYSIS_POLL_S", cls.analysis_poll_s),
            analysis_nice=int(num("TWINCLASS_ANALYSIS_NICE", cls.analysis_nice)),
            st_interval_s=num("TWINCLASS_ST_INTERVAL_S", cls.st_interval_s),
            patrol_token_ttl_s=num("TWINCLASS_PATROL_TOKEN_TTL_S", cls.patrol_token_ttl_s),
        )
