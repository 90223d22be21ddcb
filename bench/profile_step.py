"""Where a pretraining step of our engine spends its time: torch.profiler around the real training loop.

    python -m bench.profile_step                          # default params.yaml, CPU, bf16
    python -m bench.profile_step --device cuda --compile --set model.layers=12 --set model.hidden=768 ...

    python -m bench.profile_step --op-timer               # CPU: wall time of every aten op, by op and shapes

Builds the benchmark's data (bench/data.py), trains through `engine.loop.train` for --warmup untimed steps,
then profiles --steps steps and prints the step time and the top operators (self CPU time; on a GPU also
self device time). TORCH_LOGS=recompiles,graph_breaks shows what torch.compile does.

--op-timer times each aten call with a TorchDispatchMode instead (CPU ops run synchronously, so the wall time
of a call is its cost). On the 2-core VM torch.profiler slowed steps up to 2x; this timer adds ~20 us per op.
Time outside aten (numpy dropout masks, Python) shows as the step minus the ops' total.

--ab-sparse measures what the sparse last layer (engine/accel/sparse_mlm.py) buys, paired in one process: steps
alternate in blocks of 8 between the sparse and the full last layer (the batch's query index dropped), so the
machine's drift hits both alike; prints the median step of each (the first step of each block not counted).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from bench.data import build_data, config_overrides, load_blocks, load_config
from bench.workers import masked_lm_objective, timed_run_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--no-fast-cpu-kernels", action="store_true")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rows", type=int, default=30, help="operators shown per table")
    parser.add_argument("--architecture", default=None)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--by-shape", action="store_true", help="also a table grouped by operator and input shapes")
    parser.add_argument("--op-timer", action="store_true", help="CPU: time each aten op (no torch.profiler)")
    parser.add_argument("--ab-sparse", action="store_true",
                        help="alternate blocks of 8 steps between the sparse and the full last layer")
    args = parser.parse_args(argv)

    import numpy as np
    from torch.profiler import ProfilerActivity, profile, schedule

    from lmpipe.engine.distributed import Dist
    from lmpipe.engine.loop import train
    from lmpipe.models.build import build_masked_lm

    params = load_config(overrides=config_overrides(parser, args))[0]
    cuda = args.device == "cuda"
    if args.op_timer and (cuda or args.compile):
        parser.error("--op-timer times eager CPU ops: drop --device cuda / --compile")
    with tempfile.TemporaryDirectory(prefix="lmpipe-profile-") as tmp:
        build_data(params, Path(tmp))
        tokenizer, blocks, heldout = load_blocks(Path(tmp))
    torch.manual_seed(params.seed)
    model = build_masked_lm(params.model, tokenizer)
    objective = masked_lm_objective(model, blocks, heldout, params, tokenizer)
    total = args.warmup + args.steps + 1
    cfg = timed_run_config(params.pretrain.train, total, args.precision, log_every=10, compile=args.compile,
                           fast_cpu_kernels=not args.no_fast_cpu_kernels)
    stamps: list[float] = []
    if args.ab_sparse:
        return _ab_sparse(objective, cfg, params.pretrain.lr, params.seed, args.warmup, block=8)
    if args.op_timer:
        timer = OpTimer()
        with timer:
            def on_step(step: int, _objective) -> None:
                stamps.append(time.perf_counter())
                timer.active = args.warmup <= step < args.warmup + args.steps

            train(objective, cfg, lr=params.pretrain.lr, seed=params.seed, dist_info=Dist(), on_step=on_step, desc="profile")
        steps = np.diff(stamps)
        print(f"step seconds: warm-up {np.round(steps[:args.warmup], 3).tolist()}, "
              f"timed {np.round(steps[args.warmup:args.warmup + args.steps], 3).tolist()}")
        print(timer.report(args.steps, args.rows))
        return 0
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities, schedule=schedule(wait=args.warmup, warmup=0, active=args.steps, repeat=1),
                 record_shapes=True) as prof:
        def on_step(step: int, _objective) -> None:
            if cuda:
                torch.cuda.synchronize()
            stamps.append(time.perf_counter())
            if step > 0:
                prof.step()

        train(objective, cfg, lr=params.pretrain.lr, seed=params.seed, dist_info=Dist(device=torch.device(args.device)),
              on_step=on_step, desc="profile")
    steps = np.diff(stamps)
    tokens = cfg.batch_size * blocks.shape[1]
    print(f"step seconds (synchronised): warm-up {np.round(steps[:args.warmup], 3).tolist()}, "
          f"profiled {np.round(steps[args.warmup:], 3).tolist()}; {tokens} tokens per step")
    averages = prof.key_averages()
    print(averages.table(sort_by="self_cpu_time_total", row_limit=args.rows))
    if cuda:
        print(averages.table(sort_by="self_device_time_total", row_limit=args.rows))
    if args.by_shape:
        print(prof.key_averages(group_by_input_shape=True).table(
            sort_by="self_device_time_total" if cuda else "self_cpu_time_total", row_limit=args.rows,
            max_name_column_width=30, max_shapes_column_width=90))
    return 0


def _ab_sparse(objective, cfg, lr: float, seed: int, warmup: int, block: int) -> int:
    import numpy as np

    from lmpipe.engine.distributed import Dist
    from lmpipe.engine.loop import train

    build = objective.train_batch
    calls: list[tuple[float, int]] = []  # (time, step) at each batch: one batch per step (no accumulation)

    def train_batch(indices, step, seed):
        calls.append((time.perf_counter(), step))
        batch = build(indices, step, seed)
        if (step // block) % 2:
            batch.pop("query_columns"), batch.pop("query_slots")
        return batch

    objective.train_batch = train_batch
    train(objective, cfg, lr=lr, seed=seed, dist_info=Dist(), desc="ab-sparse")
    times = {"sparse": [], "full": []}
    for (start, step), (end, _) in zip(calls, calls[1:]):
        if step >= warmup and step % block:
            times["full" if (step // block) % 2 else "sparse"].append(end - start)
    sparse, full = (float(np.median(times[k])) for k in ("sparse", "full"))
    print(f"median step: sparse last layer {sparse:.4f} s ({len(times['sparse'])} steps), full last layer "
          f"{full:.4f} s ({len(times['full'])} steps): {full / sparse:.2f}x")
    return 0


MATMULS = ("mm", "addmm", "bmm", "baddbmm")


class OpTimer(TorchDispatchMode):
    """Wall time of every aten op while `active`, keyed by (op, input shapes)."""

    def __init__(self):
        super().__init__()
        self.active = False
        self.seconds: dict[tuple[str, tuple], list] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not self.active:
            return func(*args, **(kwargs or {}))
        start = time.perf_counter()
        result = func(*args, **(kwargs or {}))
        elapsed = time.perf_counter() - start
        shapes = tuple(tuple(a.shape) for a in args if isinstance(a, torch.Tensor))[:3]
        entry = self.seconds.setdefault((func.overloadpacket.__name__, shapes), [0.0, 0])
        entry[0] += elapsed
        entry[1] += 1
        return result

    def report(self, steps: int, rows: int) -> str:
        per_step = {key: (t / steps, n / steps) for key, (t, n) in self.seconds.items()}
        total = sum(t for t, _ in per_step.values())
        matmul = sum(t for (name, _), (t, _) in per_step.items() if name in MATMULS)
        lines = [f"aten ops per step: {1e3 * total:.1f} ms, matmuls {1e3 * matmul:.1f} ms, "
                 f"other ops {1e3 * (total - matmul):.1f} ms", "", "ms/step  calls/step  op  input shapes"]
        for (name, shapes), (t, n) in sorted(per_step.items(), key=lambda kv: -kv[1][0])[:rows]:
            lines.append(f"{1e3 * t:7.1f}  {n:6.1f}  {name}  {shapes}")
        return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
