"""Models: built from params, loaded from and saved as Hugging Face directories."""
