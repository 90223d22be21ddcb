"""The bench's bookkeeping: GPU timing with recompiles excluded, --set validated like params.yaml, rounds, the FLOP
model, the op timer and the paired sparse/full A/B of bench.profile_step."""

from __future__ import annotations

import pytest

from bench.run import main
from bench.timing import gpu_rate
from lmpipe.config.loader import ParamsError


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


def test_repeated_rounds_report_the_median_round_and_every_rounds_ratio():
    from bench.timing import median_round, round_ratios

    ours = median_round([{"tokens_per_s": v, "round": i, "step_s_median": 1 / v} for i, v in enumerate([30, 10, 20])])
    assert ours["tokens_per_s"] == 20 and ours["step_s_median"] == 1 / 20  # the whole median round is kept
    assert ours["round_tokens_per_s"] == [30, 10, 20]
    assert median_round([{"tokens_per_s": v, "round": i} for i, v in enumerate([4, 1, 3, 2])])["tokens_per_s"] == 2
    theirs = median_round([{"tokens_per_s": v, "round": i} for i, v in enumerate([10, 5])])  # round 2 failed
    assert round_ratios(ours, theirs) == [3.0, 2.0]  # paired by round, not by position
    single = {"tokens_per_s": 8.0}  # a row from before rounds existed (--from-json of an old run)
    assert round_ratios(single, {"tokens_per_s": 4.0}) == [2.0]


def test_op_timer_counts_only_active_steps_and_splits_out_matmuls():
    import torch

    from bench.profile_step import OpTimer

    a = torch.ones(64, 64)
    timer = OpTimer()
    with timer:
        a + a  # not active: not counted
        timer.active = True
        for _ in range(2):  # two "steps"
            a @ a
            a * 2
    assert {name for name, _ in timer.seconds} == {"mm", "mul"}
    assert timer.seconds[("mm", ((64, 64), (64, 64)))][1] == 2
    report = timer.report(steps=2, rows=5)
    matmul_ms = float(report.split("matmuls ")[1].split(" ms")[0])
    assert matmul_ms == round(1e3 * timer.seconds[("mm", ((64, 64), (64, 64)))][0] / 2, 1)
    assert "1.0  mm  ((64, 64), (64, 64))" in report  # one call per step


def test_flop_model_counts_what_each_engine_executes():
    import dataclasses

    from bench.flops import flop_model
    from lmpipe.config.schema import load_params

    params = load_params("params.yaml")
    modernbert = flop_model(params, vocab=5000, non_special_fraction=1.0)
    m, s = params.model, params.tokenizer.max_length
    tokens, masked = modernbert["tokens_per_step"], modernbert["masked_per_step"]
    assert modernbert["executed_trainer_per_step"] - modernbert["useful_per_step"] == pytest.approx(
        6 * (modernbert["n_head_transform"] + m.hidden * 5000) * (tokens - masked))
    # the sparse last layer skips Wqkv's query rows, Wo, the GeGLU MLP (Wi: hidden -> 2 x intermediate) and the
    # attention of the unmasked positions (no biases, 1 LayerNorm weight vector)
    skipped_params = 2 * m.hidden * m.hidden + 3 * m.hidden * m.intermediate + m.hidden
    assert modernbert["useful_per_step"] - modernbert["executed_ours_per_step"] == pytest.approx(
        (tokens - masked) * (6 * skipped_params + 12 * s * m.hidden))
    bert = flop_model(dataclasses.replace(params, model=dataclasses.replace(m, architecture="bert")), 5000, 1.0)
    # BERT's separate query projection is skipped too; biases and two LayerNorms (weight + bias each)
    h, i = m.hidden, m.intermediate
    assert bert["useful_per_step"] - bert["executed_ours_per_step"] == pytest.approx(
        (tokens - masked) * (6 * (2 * h * h + 2 * h * i + 7 * h + i) + 12 * s * h))


def test_ab_sparse_alternates_the_sparse_and_the_full_last_layer(capsys, monkeypatch):
    from bench.profile_step import main as profile_main
    from lmpipe.engine.objectives import masked_lm as objectives

    sparse_calls = []  # per training forward: did the batch carry the sparse layer's index?
    real = objectives.final_hidden_at

    def spy(encoder, batch):
        if encoder.training:
            sparse_calls.append("query_columns" in batch)
        return real(encoder, batch)

    monkeypatch.setattr(objectives, "final_hidden_at", spy)

    tiny = ["model.layers=2", "model.hidden=32", "model.heads=2", "model.intermediate=64",
            "pretrain.train.batch_size=8", "data.builtin.corpus_documents=300"]
    assert profile_main(["--ab-sparse", "--warmup", "0", "--steps", "32",
                         *[arg for kv in tiny for arg in ("--set", kv)]]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    # 33 steps in blocks of 8, the first of each block not counted: 7 + 7 + 7 + 7 steps timed
    assert "sparse last layer" in line and "(14 steps), full last layer" in line and line.endswith("x"), line
    assert sparse_calls == ([True] * 8 + [False] * 8) * 2 + [True]  # blocks of 8 steps, sparse first


def test_clm_rows_train_the_same_gpt2_in_both_engines(tmp_path, one_thread):
    import json

    import transformers
    import yaml

    from bench import REPO_ROOT
    from bench.data import build_clm_data
    from bench.workers import CLM_ROWS, causal_lm_row
    from lmpipe.config.clm_schema import clm_params_from_dict

    raw = yaml.safe_load((REPO_ROOT / "clm" / "params.yaml").read_text())
    raw["data"]["builtin"]["corpus_documents"] = 300
    raw["model"].update(layers=1, width=32, heads=2)
    raw["tokenizer"]["vocab_size"] = 512
    raw["pretrain"]["train"]["batch_size"] = 4
    (tmp_path / "params.json").write_text(json.dumps(raw))
    build_clm_data(clm_params_from_dict(raw), tmp_path)
    verbosity = transformers.logging.get_verbosity()
    try:
        for row in CLM_ROWS:
            causal_lm_row(row, tmp_path, warmup=1, steps=3, precision="fp32", out=tmp_path / f"{row}.json")
    finally:
        transformers.logging.set_verbosity(verbosity)
    ours, trainer = (json.loads((tmp_path / f"{row}.json").read_text()) for row in CLM_ROWS)
    assert ours["init_checksum"] == trainer["init_checksum"]  # the same initial weights
    assert ours["timed_steps"] == trainer["timed_steps"] == 3
    assert ours["tokens_per_step"] == trainer["tokens_per_step"] == 4 * raw["model"]["context_length"]
    # both start from the same weights on the same blocks: the early losses agree to within the data order
    assert abs(ours["loss_last5"] - trainer["loss_last5"]) < 0.5, (ours["loss_last5"], trainer["loss_last5"])


def test_bench_code_holds_no_machine_paths():
    from bench import REPO_ROOT

    for source in (REPO_ROOT / "bench").glob("*.py"):
        text = source.read_text()
        for machine_path in ("/work/", "../shared", "/home/", "/tmp/"):
            assert machine_path not in text, f"{source.name} names {machine_path}: derive it or take an option"
