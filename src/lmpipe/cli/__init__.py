"""Command-line tools: lmpipe-predict, lmpipe-generate and the recipe runner."""
