"""PicoPose networks: configurations, modules, checkpoints, ONNX export and input preprocessing.

Facts: shared/design/METHODS.md ("PicoPose"). The `official` config loads the official Lightning
checkpoints strictly; `small` (ViT-S/14-like) and `small_cnn` (EfficientNet-Lite0) are CPU-sized.
Import from the modules (config.py has no PyTorch dependency, so choosing a config is cheap).
"""
