"""Training objectives: masked LM, classification and causal LM, each a loss summed over its targets."""
