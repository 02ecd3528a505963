"""Data: IDX files, user images, augmentation and the Lightning data module.

Import the submodules directly; this package file stays empty so that `data.images` and `data.idx`
load without torch.
"""
