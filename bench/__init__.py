"""Throughput benchmark: our training engine against the Hugging Face Trainer (`python -m bench.run`)."""
