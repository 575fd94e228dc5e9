"""A pool's forecaster as its config builds it, its heavy refits staggered by its name.

Pools the daemon starts together would all refit their forecasters on the same tick every
`refit_every` (a thousand pools: seconds of one tick). A predictor that takes a
`refit_phase` gets one from a stable hash of the pool's name, so the refits spread over
the period, the same in every process, every restart and every backtest. A phase written
in the pool's params wins.

A predictor fitted once (`autoscaler forecast`) replays fully from its first fit: the quick
first fit (`quick_first_fit`) is for the daemon's first tick of many pools, and a one-off
answer should show the band the running daemon has.
"""

from __future__ import annotations

import hashlib
from typing import Any

from autoscaler.config.schema import Pool
from predictors import PREDICTORS, Predictor, make_predictor, params_model

PHASE_PARAM = "refit_phase"
QUICK_PARAM = "quick_first_fit"


def refit_phase_of(name: str) -> float:
    """A share in [0, 1) that depends on `name` alone (not on Python's salted hash)."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def predictor_params(pool: Pool, one_shot: bool = False) -> dict[str, Any]:
    """The pool's predictor params, with its name's refit phase where the kind takes one
    (and, `one_shot`, no quick first fit)."""
    params = dict(pool.predictor.params)
    cls = PREDICTORS.get(pool.predictor.kind)
    fields = params_model(cls).model_fields if cls is not None else {}
    if PHASE_PARAM in fields:
        params.setdefault(PHASE_PARAM, refit_phase_of(pool.name))
    if one_shot and QUICK_PARAM in fields:
        params[QUICK_PARAM] = False
    return params


def make_pool_predictor(pool: Pool, one_shot: bool = False) -> Predictor:
    """A fresh predictor of the pool's kind and params; a ValueError names a bad one.
    `one_shot`: fitted once, not ticked (its band the full replay's from the start)."""
    return make_predictor(pool.predictor.kind, predictor_params(pool, one_shot))
