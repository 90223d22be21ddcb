"""lmpipe: pretrain a transformer language model from scratch and fine-tune it, as a reproducible DVC pipeline."""
