"""The base of every settings model: unknown keys are errors, values are frozen."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """A typo in a config key is an error rather than a silently ignored setting; an
    infinite or NaN number is one too (an infinite per-node capacity reads as 0 nodes)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
