"""The params files: one loader, the main and causal-LM schemas (every value set, checked before any work)."""
