"""Fast paths behind a transformers version guard: fused CPU kernels and the sparse last masked-LM layer."""
