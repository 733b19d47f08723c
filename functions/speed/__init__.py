"""Making inference fast: optimization flags applied, torch.compile and its cache, the text-to-image
fast path, CUDA graphs, DeepCache."""
