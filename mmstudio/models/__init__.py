"""Our own small ``nn.Module``s, one file per model, where no library class fits."""
