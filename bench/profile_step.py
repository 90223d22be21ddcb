"""Where a pretraining step of our engine spends its time: torch.profiler around the real training loop.

    python -m bench.profile_step                          # default params.yaml, CPU, bf16
    python -m bench.profile_step --device cuda --compile --set model.layers=12 --set model.hidden=768 ...

Builds the benchmark's data (bench/run.py), trains through `engine.loop.train` for --warmup untimed steps,
then profiles --steps steps and prints the step time and the top operators (self CPU time; on a GPU also
self device time). TORCH_LOGS=recompiles,graph_breaks shows what torch.compile does.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from bench.run import build_data, config_overrides, load_config


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
    args = parser.parse_args(argv)

    import numpy as np
    import torch
    from torch.profiler import ProfilerActivity, profile, schedule

    from lmpipe.engine.distributed import Dist
    from lmpipe.engine.loop import train
    from lmpipe.engine.objectives import MaskedLM
    from lmpipe.modeling import build_masked_lm
    from lmpipe.tokenization import load_tokenizer

    params = load_config(overrides=config_overrides(parser, args))[0]
    cuda = args.device == "cuda"
    with tempfile.TemporaryDirectory(prefix="lmpipe-profile-") as tmp:
        build_data(params, Path(tmp))
        tokenizer = load_tokenizer(Path(tmp) / "tokenizer")
        blocks = np.load(Path(tmp) / "blocks.npy").astype(np.int64)
        heldout = np.load(Path(tmp) / "heldout.npy").astype(np.int64)
    torch.manual_seed(params.seed)
    model = build_masked_lm(params.model, tokenizer)
    objective = MaskedLM(model, blocks, heldout, mask_rate=params.pretrain.mask_rate,
                         mask_token_fraction=params.pretrain.mask_token_fraction,
                         random_token_fraction=params.pretrain.random_token_fraction,
                         mask_token_id=tokenizer.mask_token_id, special_token_ids=tokenizer.all_special_ids,
                         vocab_size=len(tokenizer), eval_seed=params.seed)
    total = args.warmup + args.steps + 1
    cfg = dataclasses.replace(params.pretrain.train, steps=total, epochs=None, tokens=None, minutes=None,
                              precision=args.precision, compile=args.compile, eval_every=10 ** 9, eval_batches=1,
                              checkpoint_every=0, log_every=10, micro_batch_size=None,
                              fast_cpu_kernels=not args.no_fast_cpu_kernels)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    stamps: list[float] = []
    with profile(activities=activities, schedule=schedule(wait=args.warmup, warmup=0, active=args.steps, repeat=1),
                 record_shapes=True) as prof:
        def on_step(step: int, _objective) -> None:
            if cuda:
                torch.cuda.synchronize()
            stamps.append(time.perf_counter())
            if step > 0:
                prof.step()

        train(objective, cfg, lr=cfg.lr, seed=params.seed, dist_info=Dist(device=torch.device(args.device)),
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


if __name__ == "__main__":
    raise SystemExit(main())
