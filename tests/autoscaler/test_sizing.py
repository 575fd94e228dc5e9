"""The sizing's arrival rule: the band's peak from when nodes ordered now would be ready."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from autoscaler.sizing import arrival_peak, arrival_peaks

TIMES = pd.date_range("2026-01-05 09:01", periods=15, freq="1min", tz="UTC")
BOOT = timedelta(minutes=10)


def test_the_peak_counts_only_steps_from_boot_time_on() -> None:
    band = np.arange(15.0)[::-1]  # falling: the peak from minute 10 on is the 11th step
    assert arrival_peak(band, TIMES, BOOT) == band[10]
    assert arrival_peak(band, TIMES, timedelta(0)) == band.max()


def test_a_horizon_shorter_than_the_boot_time_reads_its_last_step() -> None:
    band = np.array([5.0, 9.0, 2.0])
    assert arrival_peak(band, TIMES[:3], BOOT) == 2.0


def test_several_bands_over_the_same_steps_read_as_each_alone() -> None:
    rng = np.random.default_rng(3)
    for boot in (timedelta(0), timedelta(minutes=4), BOOT, timedelta(hours=1)):
        bands = [rng.uniform(0, 10, 15) for _ in range(3)]
        ready = np.asarray(TIMES - TIMES[0] >= boot)
        expected = [float(b[ready].max()) if ready.any() else float(b[-1]) for b in bands]
        assert arrival_peaks(bands, TIMES, boot) == expected


def test_a_band_not_on_the_forecast_steps_reads_its_whole_peak() -> None:
    band = np.array([1.0, 7.0, 3.0])
    assert arrival_peak(band, TIMES, BOOT) == 7.0  # 3 values, 15 times: no step to count from
    assert np.isnan(arrival_peak(np.array([]), TIMES[:0], BOOT))
