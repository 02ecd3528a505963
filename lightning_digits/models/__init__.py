"""The network (plain PyTorch) and its LightningModule."""
