"""Evaluation: metrics, the variant comparison, the report, the TF-IDF baseline and the model registry."""
