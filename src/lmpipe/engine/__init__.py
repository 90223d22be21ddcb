"""The one training engine: loop, state, schedule, precision, objectives, checkpoints, distributed runs."""
