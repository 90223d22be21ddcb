"""bench/run.py's bookkeeping: GPU timing with recompiles excluded, and --set validated like params.yaml."""

from __future__ import annotations

import pytest

from bench.run import gpu_rate, main
from lmpipe.params import ParamsError


def test_gpu_rate_excludes_recompiles_and_reports_them():
    warmup = 2
    steps = [30.0, 0.2] + [0.1] * 10 + [40.0] + [0.1] * 9  # a compile in warm-up, a recompile in the window
    rate = gpu_rate(steps, warmup, tokens_per_step=1000)
    assert rate["recompile_steps_excluded"] == 1
    assert rate["recompile_seconds_excluded"] == pytest.approx(40.0)
    assert rate["tokens_per_s"] == pytest.approx(1000 * 19 / 1.9)
    assert rate["tokens_per_s_all_steps"] == pytest.approx(1000 * 20 / 41.9)
    steady = gpu_rate([1.0] + [0.1] * 5, 1, tokens_per_step=1000)
    assert steady["recompile_steps_excluded"] == 0 and steady["tokens_per_s"] == pytest.approx(10000)


def test_set_overrides_are_validated_with_their_key_path():
    with pytest.raises(ParamsError, match="model.heads"):
        main(["--no-write", "--set", "model.heads=3"])  # 256 hidden is not divisible by 3 heads
    with pytest.raises(SystemExit):
        main(["--no-write", "--set", "model.layers"])  # not KEY=VALUE
