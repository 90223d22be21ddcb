"""Text to token ids: tokenizer training, encoding, and packing into blocks for pretraining."""
