"""Fine-tuning: freezing strategies, the linear probe, LoRA, and saving the classifier."""
