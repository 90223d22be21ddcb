"""Throughput benchmarks: our training engine against the Hugging Face Trainer (`python -m bench.run`,
`python -m bench.clm`) and a profiler of one pretraining step (`python -m bench.profile_step`).

Modules: run and clm (command lines and orchestration), data (config snapshot and packed blocks), workers (the
rows, each run in its own subprocess), timing (step times on a shared machine -> tokens/s), flops (the FLOP
model and the matmul peak), report (machine description and the markdown report)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
