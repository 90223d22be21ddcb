"""Data: labelled splits and the corpus from the builtin generator, local files or a dataset hub."""
