"""lmpipe.engine: the training loop's arithmetic, schedule, budgets, evaluation, checkpoints and DDP.

Everything runs a real tiny BERT (2 layers, hidden 32, blocks of 32 tokens, a 200-token WordPiece
vocabulary) through `lmpipe.engine.loop.train`; the resume and DDP tests run it in subprocesses
(tests/engine_worker.py) and compare against runs that were never interrupted or distributed.
"""

from __future__ import annotations

import math
import signal
import time
from pathlib import Path

import engine_worker as ew
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from repo_params import train_params
from sklearn.metrics import accuracy_score, precision_recall_fscore_support
from transformers import BertForSequenceClassification

from lmpipe.engine import checkpoint
from lmpipe.engine.distributed import Dist
from lmpipe.engine.evaluate import evaluate
from lmpipe.engine.loop import TrainingDiverged, train
from lmpipe.engine.objectives.base import IGNORE, mix_keys, pad_batch, row_uniforms
from lmpipe.engine.objectives.classification import Classification
from lmpipe.engine.optim import build_optimizer, lr_factor, param_groups
from lmpipe.engine.schedule import Budget, StepSampler, ends_epoch, steps_for_epochs
from lmpipe.engine.state import LogWindow, TrainState
from lmpipe.models.build import encoder_config

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return ew.make_data(tmp_path_factory.mktemp("mlm-data"))


@pytest.fixture(scope="session")
def data(data_dir):
    return ew.load_data(data_dir)


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def capture_grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The gradient each parameter holds after its last accumulation (before clipping and the step)."""
    grads: dict[str, torch.Tensor] = {}
    for name, param in model.named_parameters():
        param.register_post_accumulate_grad_hook(lambda p, name=name: grads.__setitem__(name, p.grad.clone()))
    return grads


# --------------------------------------------------------------------------------------------- subprocesses


@pytest.mark.subprocess
def test_resume_after_sigkill_is_bitwise_identical(data_dir, tmp_path):
    # log_every does not divide checkpoint_every: the logging window must survive the restart too.
    args = ["--steps", "14", "--checkpoint-every", "4", "--log-every", "3", "--eval-every", "5"]
    changed_args = [*args, "--lr", "2e-3"]
    # As the stages do: the checkpoint directory is named by the fingerprint of the run's params and inputs
    # (computed once here, so an edit to the package's sources mid-test cannot move it).
    ckpt_root = tmp_path / "ckpt"
    ckpt_dir = ckpt_root / f"mlm-{checkpoint.fingerprint('mlm', args, [data_dir])}"
    changed_dir = ckpt_root / f"mlm-{checkpoint.fingerprint('mlm', changed_args, [data_dir])}"
    assert changed_dir != ckpt_dir

    reference = ew.launch(data_dir, tmp_path / "reference", tmp_path / "ckpt-reference", *args)
    out = tmp_path / "run"
    victim = ew.launch(data_dir, out, ckpt_dir, *args, "--sleep", "0.25")
    state_file = ckpt_dir / checkpoint.STATE_FILE
    deadline = time.monotonic() + ew.SUBPROCESS_TIMEOUT
    while time.monotonic() < deadline and victim.poll() is None:
        progress = out / "progress"
        text = progress.read_text() if progress.exists() else ""
        if state_file.exists() and text and int(text) >= 6:  # past a checkpoint, with steps to redo
            break
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=30) == -signal.SIGKILL, (out / "log.txt").read_text()[-3000:]
    assert not (out / "weights.safetensors").exists()
    saved_step = checkpoint.load(ckpt_dir)["loop"]["step"]
    assert saved_step in (4, 8)

    # Changed params name another directory, so that run starts from step 0 beside the checkpoint.
    tokenizer, blocks = ew.load_data(data_dir)
    ran: list[int] = []
    train(ew.mlm_objective(tokenizer, blocks), ew.train_params(steps=5, checkpoint_every=4), lr=2e-3, seed=0,
          dist_info=Dist(), checkpoint_dir=changed_dir, on_step=lambda step, _: ran.append(step))
    assert ran == [0, 1, 2, 3, 4] and state_file.exists()

    resumed = ew.launch(data_dir, out, ckpt_dir, *args)
    resumed_record = ew.finish(resumed, out)
    reference_record = ew.finish(reference, tmp_path / "reference")

    assert resumed_record["first_step"] == saved_step
    assert resumed_record["steps_run"] == 14 - saved_step
    assert not ckpt_dir.exists()  # a finished run removes its checkpoint
    assert reference_record["first_step"] == 0 and reference_record["saves"] == [4, 8, 12]
    assert resumed_record["history"] == reference_record["history"]
    assert resumed_record["evals"] == reference_record["evals"]
    expected, got = ew.read_weights(tmp_path / "reference"), ew.read_weights(out)
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(got[name], expected[name]), name


# --------------------------------------------------------------------------------------------- checkpoint key


def test_fingerprint_covers_stage_params_and_inputs(tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "a.txt").write_text("one")
    params = {"seed": 1, "train": {"lr": 1e-3, "steps": 10}}
    base = checkpoint.fingerprint("stage", params, [inputs])
    assert base == checkpoint.fingerprint("stage", {"train": {"steps": 10, "lr": 1e-3}, "seed": 1}, [inputs])
    assert base != checkpoint.fingerprint("stage", {"seed": 1, "train": {"lr": 2e-3, "steps": 10}}, [inputs])
    assert base != checkpoint.fingerprint("other", params, [inputs])
    (inputs / "a.txt").write_text("two")
    assert base != checkpoint.fingerprint("stage", params, [inputs])


def test_a_checkpoint_restores_the_loop_state_weights_optimizer_and_rng(data, tmp_path):
    tokenizer, blocks = data
    cfg = ew.train_params(steps=2)
    saved = ew.mlm_objective(tokenizer, blocks, init_seed=1)
    optimizer = build_optimizer(param_groups(saved.model, 1e-3, 0.01), cfg, torch.device("cpu"))
    saved(saved.train_batch(np.arange(4), 0, 0))["loss_sum"].backward()
    optimizer.step()  # an optimizer state (Adam's moments) to restore
    state = TrainState(step=7, tokens=3584, seconds=1.25, history=[{"step": 6, "loss": 4.5, "lr": 1e-3}],
                       evals=[{"step": 5, "epoch": 0.5, "loss": 5.0}], best={"step": 5, "epoch": 0.5, "loss": 5.0},
                       best_weights={"w": torch.arange(3.0)}, bad_evals=2,
                       window=LogWindow(loss_sum=12.5, targets=40, tokens=512, seconds=0.25))
    checkpoint.save(tmp_path, state, saved.model, optimizer)
    expected_draw = torch.rand(4)

    restored = ew.mlm_objective(tokenizer, blocks, init_seed=2)
    restored_optimizer = build_optimizer(param_groups(restored.model, 1e-3, 0.01), cfg, torch.device("cpu"))
    torch.rand(10)  # move the RNG on: resuming must put it back
    loaded = checkpoint.resume(tmp_path, restored.model, restored_optimizer)
    assert torch.equal(torch.rand(4), expected_draw)
    assert torch.equal(loaded.best_weights["w"], state.best_weights["w"])
    assert {**vars(loaded), "best_weights": None} == {**vars(state), "best_weights": None}
    for name, value in saved.model.state_dict().items():
        assert torch.equal(restored.model.state_dict()[name], value), name
    moments = [s["exp_avg"] for s in restored_optimizer.state.values()]
    assert moments and all(torch.equal(a, b["exp_avg"]) for a, b in zip(moments, optimizer.state.values()))
    assert checkpoint.resume(tmp_path / "none", restored.model, restored_optimizer) is None


# --------------------------------------------------------------------------------------------- gradient accumulation


def test_accumulated_gradient_equals_full_batch_gradient(data):
    tokenizer, blocks = data
    common = dict(batch_size=32, steps=1, max_grad_norm=None, warmup=0.0)

    full = ew.mlm_objective(tokenizer, blocks)
    full_grads = capture_grads(full.model)
    train(full, ew.train_params(**common), lr=1e-9, seed=3, dist_info=Dist())

    accumulated = ew.mlm_objective(tokenizer, blocks)
    accumulated_grads = capture_grads(accumulated.model)
    train(accumulated, ew.train_params(micro_batch_size=8, **common), lr=1e-9, seed=3, dist_info=Dist())

    assert full_grads.keys() == accumulated_grads.keys() and len(full_grads) > 10
    for name in full_grads:
        torch.testing.assert_close(accumulated_grads[name], full_grads[name], atol=1e-6, rtol=1e-5, msg=name)

    # What the loop should compute: the step's summed loss over its total target count.
    reference = ew.mlm_objective(tokenizer, blocks)
    indices = StepSampler(reference.train_size, 32, seed=3).indices(0)
    batch = reference.train_batch(indices, 0, 3)
    out = reference(batch)
    (out["loss_sum"] / out["targets"]).backward()
    for name, param in reference.model.named_parameters():
        torch.testing.assert_close(full_grads[name], param.grad, atol=1e-6, rtol=1e-5, msg=name)

    # A mean of per-micro-batch means weights tokens unequally (the masks select different counts), so it
    # gives a different gradient: the comparison above can fail.
    naive = ew.mlm_objective(tokenizer, blocks)
    micro = [naive.train_batch(indices[i:i + 8], 0, 3) for i in range(0, 32, 8)]
    counts = [naive.count_targets(b) for b in micro]
    assert len(set(counts)) > 1, counts
    for b in micro:
        out = naive(b)
        (out["loss_sum"] / out["targets"] / len(micro)).backward()
    worst = max((p.grad - full_grads[n]).abs().max().item() for n, p in naive.model.named_parameters())
    assert worst > 1e-3  # a thousand times the tolerance above


# --------------------------------------------------------------------------------------------- determinism


def test_same_seed_same_run_different_seed_different_run(data):
    tokenizer, blocks = data
    cfg = ew.train_params(steps=6, eval_every=3, log_every=2)

    def run(seed: int):
        objective = ew.mlm_objective(tokenizer, blocks, dropout=0.1)
        result = train(objective, cfg, lr=1e-3, seed=seed, dist_info=Dist())
        return ew.plain(result.history), result.evals, weights(objective.model)

    history, evals, final = run(5)
    history_again, evals_again, final_again = run(5)
    assert history == history_again and evals == evals_again
    assert all(torch.equal(final[k], final_again[k]) for k in final)

    history_other, evals_other, final_other = run(6)
    assert [r["loss"] for r in history_other] != [r["loss"] for r in history]
    assert evals_other != evals
    assert not torch.equal(final["bert.embeddings.word_embeddings.weight"],
                           final_other["bert.embeddings.word_embeddings.weight"])


# --------------------------------------------------------------------------------------------- budgets, schedule


@pytest.mark.parametrize("budget, expected_steps", [
    ({"steps": 3}, 3),
    ({"epochs": 0.5}, 4),  # 120 blocks: ceil(0.5 * 120 / 16) = 4
    ({"epochs": 2.0}, 15),
    ({"tokens": 1500}, 3),  # 16 blocks x 32 tokens = 512 a step: 1536 >= 1500 after 3
    ({"minutes": 1e-7}, 1),  # any step outlasts 6 microseconds
])
def test_budget_stops_at_the_right_step(data, budget, expected_steps):
    tokenizer, blocks = data
    objective = ew.mlm_objective(tokenizer, blocks, n_train=120)
    cfg = ew.train_params(batch_size=16, **budget)
    result = train(objective, cfg, lr=1e-3, seed=0, dist_info=Dist())
    assert result.summary["steps"] == expected_steps
    assert [row["step"] for row in result.history] == list(range(1, expected_steps + 1))
    assert result.summary["tokens"] == expected_steps * 16 * ew.SEQ
    assert [row["step"] for row in result.evals] == [expected_steps]  # the end always evaluates


@pytest.mark.parametrize("n, batch", [(40, 8), (44, 8), (100, 16), (10, 16), (7, 3)])
def test_an_epoch_ends_at_the_step_that_completes_a_pass_of_the_sampler(n, batch):
    sampler = StepSampler(n, batch, seed=0)
    seen = np.zeros(n, dtype=int)
    passes = 0
    for step in range(1, 4 * n // batch + 3):
        np.add.at(seen, sampler.indices(step - 1), 1)
        completed = seen.min() > passes  # every example read once more
        passes = seen.min()
        assert ends_epoch(step, n, batch) == completed, step
        if completed:  # the epochs budget and the epoch ends agree
            assert steps_for_epochs(passes, n, batch) == step
            assert Budget(ew.train_params(epochs=float(passes), batch_size=batch), n).total_steps == step


def test_learning_rate_follows_the_schedule_in_the_loop(data):
    tokenizer, blocks = data
    cfg = ew.train_params(steps=10, warmup=0.2, schedule="linear", log_every=1)
    result = train(ew.mlm_objective(tokenizer, blocks), cfg, lr=1e-3, seed=0, dist_info=Dist())
    expected = [0.0, 0.5, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125]
    np.testing.assert_allclose([row["lr"] for row in result.history], np.array(expected) * 1e-3, atol=1e-12)


def test_lr_factor_warmup_linear_cosine_constant():
    linear = train_params(steps=100, warmup=0.1, schedule="linear")
    for progress, factor in [(0.0, 0.0), (0.05, 0.5), (0.1, 1.0), (0.55, 0.5), (1.0, 0.0), (1.5, 0.0)]:
        assert lr_factor(progress, linear) == pytest.approx(factor)
    floor = train_params(steps=100, warmup=0.1, schedule="linear", min_lr_ratio=0.1)
    assert lr_factor(1.0, floor) == pytest.approx(0.1)
    assert lr_factor(0.55, floor) == pytest.approx(0.55)
    cosine = train_params(steps=100, warmup=0.0, schedule="cosine")
    for progress, factor in [(0.0, 1.0), (0.25, 0.5 * (1 + math.cos(math.pi / 4))), (0.5, 0.5), (1.0, 0.0)]:
        assert lr_factor(progress, cosine) == pytest.approx(factor)
    constant = train_params(steps=100, warmup=0.5, schedule="constant")
    assert [lr_factor(p, constant) for p in (0.25, 0.5, 0.9)] == pytest.approx([0.5, 1.0, 1.0])


def test_no_weight_decay_on_biases_and_layer_norms(data):
    tokenizer, blocks = data
    model = ew.mlm_objective(tokenizer, blocks).model
    model.bert.embeddings.word_embeddings.weight.requires_grad = False
    groups = param_groups(model, 1e-3, 0.01, lr_scale=lambda name: 10.0 if name.startswith("cls.") else 1.0)
    by_name = {name: group for group in groups for name in group["names"]}
    assert "bert.embeddings.word_embeddings.weight" not in by_name  # frozen: not optimised
    assert set(by_name) == {n for n, p in model.named_parameters() if p.requires_grad}
    for name, group in by_name.items():
        no_decay = name.endswith(".bias") or "LayerNorm" in name
        assert group["weight_decay"] == (0.0 if no_decay else 0.01), name
        assert group["lr"] == pytest.approx(1e-2 if name.startswith("cls.") else 1e-3), name
    assert by_name["bert.encoder.layer.0.attention.output.LayerNorm.weight"]["weight_decay"] == 0.0
    assert by_name["bert.encoder.layer.0.attention.self.query.weight"]["weight_decay"] == 0.01
    optimizer = build_optimizer(groups, train_params(steps=1), torch.device("cpu"))
    assert sorted({g["weight_decay"] for g in optimizer.param_groups}) == [0.0, 0.01]


# --------------------------------------------------------------------------------------------- evaluation


def _classification(tokenizer, *, n_train=96, n_eval=45, objective_cls=Classification, **kwargs):
    """Three classes of variable-length token sequences; the label is which third of the vocabulary dominates."""
    rng = np.random.default_rng(0)
    vocab = len(tokenizer)

    def example():
        label = int(rng.integers(3))
        length = int(rng.integers(4, 30))
        low, high = 5 + label * (vocab - 5) // 3, 5 + (label + 1) * (vocab - 5) // 3
        ids = np.where(rng.random(length) < 0.7, rng.integers(low, high, length), rng.integers(5, vocab, length))
        return np.concatenate([[tokenizer.cls_token_id], ids, [tokenizer.sep_token_id]]).astype(np.int64), label

    train_set = [example() for _ in range(n_train)]
    eval_set = [example() for _ in range(n_eval)]
    torch.manual_seed(0)
    config = encoder_config(ew.model_params(), tokenizer)
    config.num_labels = 3
    model = BertForSequenceClassification._from_config(config, attn_implementation="sdpa")
    return objective_cls(model, [x for x, _ in train_set], np.array([y for _, y in train_set]),
                         [x for x, _ in eval_set], np.array([y for _, y in eval_set]), num_labels=3,
                         pad_token_id=tokenizer.pad_token_id, **kwargs)


def test_streaming_evaluation_equals_metrics_from_all_predictions(data):
    tokenizer, _ = data
    objective = _classification(tokenizer)
    cfg = ew.train_params(steps=30, batch_size=16, micro_batch_size=8, eval_every=10, warmup=0.0)
    result = train(objective, cfg, lr=1e-2, seed=0, dist_info=Dist())
    streamed = result.evals[-1]
    assert streamed["step"] == 30

    # The final weights over the whole evaluation set in one padded batch, scored by sklearn.
    objective.eval()
    batch = pad_batch(objective.eval_ids, tokenizer.pad_token_id)
    with torch.no_grad():
        logits = objective.model(**batch).logits
    labels = objective.eval_labels.numpy()
    predictions = logits.argmax(-1).numpy()
    assert len(set(predictions.tolist())) > 1  # not a constant classifier: macro metrics mean something
    precision, recall, f1, _ = precision_recall_fscore_support(labels, predictions, labels=[0, 1, 2],
                                                               average="macro", zero_division=0)
    assert streamed["accuracy"] == pytest.approx(accuracy_score(labels, predictions), abs=1e-12)
    assert streamed["precision_macro"] == pytest.approx(precision, abs=1e-12)
    assert streamed["recall_macro"] == pytest.approx(recall, abs=1e-12)
    assert streamed["f1_macro"] == pytest.approx(f1, abs=1e-12)
    assert streamed["loss"] == pytest.approx(F.cross_entropy(logits, objective.eval_labels).item(), rel=1e-5)


def test_the_loop_evaluates_with_the_engine_evaluate_function(data):
    tokenizer, blocks = data
    objective = ew.mlm_objective(tokenizer, blocks)
    cfg = ew.train_params(steps=2, batch_size=16, micro_batch_size=4, eval_batches=3)
    result = train(objective, cfg, lr=1e-3, seed=0, dist_info=Dist())
    # evaluation batches of twice the micro-batch, at most eval_batches of them
    again = evaluate(objective, 8, max_batches=3)
    assert objective.training  # evaluate() puts a training objective back in training mode
    assert {k: v for k, v in result.evals[-1].items() if k not in ("step", "epoch")} == again
    assert evaluate(objective, 8) != again  # the whole set scores differently from its first three batches


class ScriptedClassification(Classification):
    """Real training and evaluation passes, but the selection metric follows a script (to pin the best)."""

    script: list[float] = []  # the accuracy each successive evaluation reports
    calls = 0

    def metrics(self, sums):
        result = super().metrics(sums)
        result["accuracy"] = self.script[self.calls]
        self.calls += 1
        return result


def _snapshotting(snapshots):
    def on_step(step, objective):  # called before step `step`: the weights after `step` steps
        snapshots[step] = weights(objective.model)
    return on_step


def test_keep_best_restores_the_best_evaluation_weights(data):
    tokenizer, _ = data
    objective = _classification(tokenizer, objective_cls=ScriptedClassification)
    objective.script = [0.5, 0.9, 0.6, 0.7]
    snapshots: dict[int, dict] = {}
    cfg = ew.train_params(steps=8, batch_size=8, eval_every=2, warmup=0.0)  # 96 examples: no epoch end before 8
    result = train(objective, cfg, lr=3e-3, seed=0, dist_info=Dist(), keep_best=True,
                   on_step=_snapshotting(snapshots))
    assert [e["step"] for e in result.evals] == [2, 4, 6, 8]
    assert result.best["step"] == 4 and result.best["accuracy"] == 0.9
    restored = weights(objective.model)
    assert all(torch.equal(restored[k], snapshots[4][k]) for k in restored)
    assert not torch.equal(restored["classifier.weight"], snapshots[6]["classifier.weight"])


@pytest.mark.parametrize("n_train, steps, epochs", [
    (40, [5, 10, 12], [1.0, 2.0, 2.4]),  # 5 steps an epoch
    (44, [6, 11, 12], [48 / 44, 2.0, 96 / 44]),  # 5.5 steps an epoch: the first ends during step 6
])
def test_keep_best_evaluates_at_each_epoch_end(data, n_train, steps, epochs):
    tokenizer, _ = data
    objective = _classification(tokenizer, n_train=n_train)
    cfg = ew.train_params(steps=12, batch_size=8, eval_every=100, warmup=0.0)
    result = train(objective, cfg, lr=3e-3, seed=0, dist_info=Dist(), keep_best=True)
    assert [e["step"] for e in result.evals] == steps
    assert [e["epoch"] for e in result.evals] == pytest.approx(epochs)


def test_early_stopping_after_patience_evaluations_without_improvement(data):
    tokenizer, _ = data
    objective = _classification(tokenizer, objective_cls=ScriptedClassification)
    objective.script = [0.5, 0.4, 0.6, 0.5, 0.55, 0.9, 0.9]  # improvement at 6 resets the count
    cfg = ew.train_params(steps=40, batch_size=8, eval_every=2, warmup=0.0, early_stopping_patience=2)
    result = train(objective, cfg, lr=3e-3, seed=0, dist_info=Dist())
    assert [e["step"] for e in result.evals] == [2, 4, 6, 8, 10]
    assert result.summary["steps"] == 10


# --------------------------------------------------------------------------------------------- divergence


class NaNAfter(Classification):
    """A classifier whose loss turns NaN from optimizer step `bad_step` on (the step about to be taken)."""

    bad_step = 3
    calls = 0

    def forward(self, batch):
        out = super().forward(batch)
        if self.training:
            type(self).calls += 1
            if self.calls >= self.bad_step:
                out["loss_sum"] = out["loss_sum"] * float("nan")
        return out


def test_a_nan_loss_stops_training_with_the_step_the_lr_and_the_key(data, tmp_path):
    tokenizer, _ = data
    NaNAfter.calls = 0
    objective = _classification(tokenizer, objective_cls=NaNAfter)
    saved: list[int] = []
    original = checkpoint.save
    checkpoint.save = lambda directory, state, *rest: (saved.append(state.step), original(directory, state, *rest))
    try:
        cfg = ew.train_params(steps=20, batch_size=8, log_every=4, checkpoint_every=2, warmup=0.0, schedule="constant")
        with pytest.raises(TrainingDiverged) as error:
            train(objective, cfg, lr=3e-3, seed=0, dist_info=Dist(), checkpoint_dir=tmp_path / "ckpt",
                  lr_key="lr (finetune.lr_scale)", desc="finetune")
    finally:
        checkpoint.save = original
    message = str(error.value)
    assert message.startswith("finetune: training diverged at step 3: loss nan, gradient norm nan at lr 0.003")
    assert "Lower lr (finetune.lr_scale)" in message and "\n" not in message
    assert saved == [2]  # the checkpoint at step 4 (after the divergence) was never written


def test_a_huge_learning_rate_diverges_and_stops_instead_of_training_to_nan(data):
    tokenizer, blocks = data
    objective = ew.mlm_objective(tokenizer, blocks, n_train=64)
    cfg = ew.train_params(steps=30, log_every=5, eval_every=10, max_grad_norm=None)
    with pytest.raises(TrainingDiverged, match=r"training diverged at step \d+: .* at lr .*Lower pretrain\.train\.lr"):
        train(objective, cfg, lr=1e4, seed=0, dist_info=Dist(), lr_key="pretrain.train.lr")


# --------------------------------------------------------------------------------------------- masking


def test_masking_rates_and_special_tokens(data):
    tokenizer, blocks = data
    objective = ew.mlm_objective(tokenizer, blocks)
    specials = torch.tensor(tokenizer.all_special_ids)
    inputs = torch.from_numpy(np.tile(blocks, (3, 1)))  # ~3000 x 32 tokens
    inputs[:, 5] = tokenizer.pad_token_id  # specials inside the block as well as [CLS]/[SEP] at its ends
    out = objective.mask(inputs, mix_keys(0, np.arange(len(inputs))))
    special = torch.isin(inputs, specials)
    selected = out["labels"] != IGNORE

    assert not (selected & special).any()
    assert torch.equal(out["input_ids"][special], inputs[special])
    assert torch.equal(out["labels"][selected], inputs[selected])
    assert torch.equal(out["input_ids"][~selected], inputs[~selected])
    rate = selected.sum().item() / (~special).sum().item()
    assert rate == pytest.approx(0.15, abs=0.01)
    chosen = out["input_ids"][selected]
    original = inputs[selected]
    as_mask = (chosen == tokenizer.mask_token_id).float().mean().item()
    kept = (chosen == original).float().mean().item()
    replaced = ((chosen != original) & (chosen != tokenizer.mask_token_id)).float().mean().item()
    assert as_mask == pytest.approx(0.8, abs=0.02)
    assert kept == pytest.approx(0.1, abs=0.015)
    assert replaced == pytest.approx(0.1, abs=0.015)


def test_row_uniforms_are_uniform_independent_and_per_row():
    keys = mix_keys(1, 2, np.arange(2000))
    draws = row_uniforms(keys, 64, streams=3)
    assert draws.shape == (3, 2000, 64) and draws.min() >= 0.0 and draws.max() < 1.0
    assert draws.mean() == pytest.approx(0.5, abs=0.002)
    assert draws.var() == pytest.approx(1 / 12, abs=0.001)
    counts = np.histogram(draws, bins=20, range=(0, 1))[0]
    expected = draws.size / 20
    assert ((counts - expected) ** 2 / expected).sum() < 60  # chi-square, 19 dof: p < 1e-6 beyond 60
    flat = draws.reshape(3, -1)
    assert abs(np.corrcoef(flat)[np.triu_indices(3, 1)]).max() < 0.01  # the three streams are unrelated
    assert abs(np.corrcoef(draws[0, :, :-1].ravel(), draws[0, :, 1:].ravel())[0, 1]) < 0.01  # neighbours too
    assert np.array_equal(row_uniforms(keys[10:20], 64, streams=3), draws[:, 10:20])  # a row is its key's alone
    assert len(set(mix_keys(1, 2, np.arange(2000)).tolist())) == 2000
    assert mix_keys(1, 2, [0])[0] != mix_keys(1, 3, [0])[0] != mix_keys(2, 2, [0])[0]


def test_mask_depends_on_seed_step_and_example_not_grouping(data):
    tokenizer, blocks = data
    objective = ew.mlm_objective(tokenizer, blocks)
    indices = np.array([7, 3, 100, 42, 5, 64, 11, 90])
    whole = objective.train_batch(indices, step=4, seed=1)
    parts = [objective.train_batch(indices[i:i + 3], step=4, seed=1) for i in range(0, 8, 3)]
    for key in ("input_ids", "labels"):  # positions/targets index within their own batch
        assert torch.equal(whole[key], torch.cat([p[key] for p in parts]))
    order = np.argsort(indices)
    shuffled = objective.train_batch(indices[order], step=4, seed=1)
    assert torch.equal(shuffled["labels"], whole["labels"][order])
    assert not torch.equal(objective.train_batch(indices, step=5, seed=1)["labels"], whole["labels"])
    assert not torch.equal(objective.train_batch(indices, step=4, seed=2)["labels"], whole["labels"])


# --------------------------------------------------------------------------------------------- DDP


def test_an_evaluation_set_smaller_than_the_process_count_is_refused(data):
    tokenizer, blocks = data
    objective = ew.mlm_objective(tokenizer, blocks, n_eval=1)
    with pytest.raises(ValueError, match="at least one example for each of the 2 processes"):
        train(objective, ew.train_params(), lr=1e-3, seed=0, dist_info=Dist(rank=0, world=2))


@pytest.mark.subprocess
def test_ddp_matches_single_process(data, data_dir, tmp_path):
    tokenizer, blocks = data
    steps = 6
    # 7 held-out blocks: evaluation batches of 3 and 4, one on each process (with batches of 2 x micro
    # = 8, rank 1 would have none and miss the collectives)
    args = ["--steps", str(steps), "--batch", "16", "--micro", "4", "--dropout", "0", "--checkpoint-every", "2",
            "--log-every", "1", "--eval-every", "3", "--n-eval", "7"]
    outs = [tmp_path / f"rank{rank}" for rank in range(2)]
    ranks = ew.launch_ranks(data_dir, outs, tmp_path / "ckpt" / "mlm", *args)

    # The same global batch in one process, without accumulation, while the ranks run.
    single = ew.mlm_objective(tokenizer, blocks, n_eval=7)
    cfg = ew.train_params(steps=steps, batch_size=16, warmup=0.25, eval_every=3)
    result = train(single, cfg, lr=1e-3, seed=0, dist_info=Dist())

    records = ew.finish_ranks(ranks, outs)
    assert [r["world"] for r in records] == [2, 2]
    assert records[0]["saves"] == [2, 4] and records[1]["saves"] == []  # only rank 0 writes checkpoints
    assert not (tmp_path / "rank1" / "weights.safetensors").exists()
    history = records[0]["history"]
    assert [row["step"] for row in history] == list(range(1, steps + 1))
    np.testing.assert_allclose([row["loss"] for row in history], [row["loss"] for row in result.history], rtol=1e-4)
    assert [row["tokens"] for row in history] == [row["tokens"] for row in result.history]
    assert records[1]["history"] == history  # every rank logs the all-reduced loss
    np.testing.assert_allclose([e["loss"] for e in records[0]["evals"]], [e["loss"] for e in result.evals], rtol=1e-4)

    got = ew.read_weights(tmp_path / "rank0")
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(got[name], value, atol=1e-5, rtol=1e-4, msg=name)
