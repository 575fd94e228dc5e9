"""A backtest setting a replay cannot use, named by its field (BacktestSettings), so that
the command line names the option that gave it: "per-node capacity must be a positive
number" said nothing of --per-node-rps."""

from __future__ import annotations

from pydantic import ValidationError

from common.settings import validation_problem


class SettingError(ValueError):
    """A backtest setting a replay cannot use; `setting` names the field, for the command
    line to name the option it was given by."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(problem)
        self.setting = setting


def predictor_problem(exc: ValidationError, target: float | None) -> SettingError:
    """pydantic's errors as one line ("margin: Input should be ..."), without its URL, of
    the setting the first one is in (a predictor param: the target it was given from)."""
    prefix = "" if target is None else f"predictor target {target:g}: "
    problem = "; ".join(validation_problem(error) for error in exc.errors())
    first = validation_problem(exc.errors()[0]).split(":")[0]  # its field, loc or message's
    setting = "predictor_targets" if target is not None else _SETTING_OF.get(first, "predictor")
    return SettingError(setting, prefix + problem)


_SETTING_OF = {
    "margin": "margin",
    "policy": "policy",
    "params.service_target": "service_target",
    "params.latency_target_s": "latency_target_s",
}
"""The settings a predictor config's field is given from (the rest: the predictor's)."""
