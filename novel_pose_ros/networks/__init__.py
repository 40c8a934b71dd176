"""PyTorch networks of the methods we implement (one sub-package per method, one file per part).

- `networks.picopose`: PicoPose (backbone, stage-2 affine regressor, stage-3 DPT head + flow decoder),
  official-checkpoint compatible, with ONNX export.
"""
