"""`novel-pose export --config NAME --weights W --out DIR`: PicoPose as ONNX graphs + a JSON sidecar."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser("export", help="export PicoPose to ONNX (backbone, affine, dpt, flow) + sidecar JSON")
    export.add_argument("--config", required=True, help="PicoPose config: official, small, small_cnn")
    export.add_argument("--weights", type=Path, required=True, help="checkpoint (Lightning .ckpt or state dict)")
    export.add_argument("--out", type=Path, default=Path("models/onnx"), help="output folder (default: models/onnx)")
    export.add_argument("--opset", type=int, default=17, help="ONNX opset (≥ 17)")
    export.add_argument("--trust-pickle", action="store_true",
                        help="allow arbitrary pickled objects (trusted files only)")
    export.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime vs PyTorch check")
    export.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    from novel_pose_ros.networks.picopose.checkpoint import load_weights
    from novel_pose_ros.networks.picopose.config import get_config
    from novel_pose_ros.hashing import file_sha256
    from novel_pose_ros.networks.picopose.export import export_onnx, verify_onnx
    from novel_pose_ros.networks.picopose.picopose_net import build_network

    config = get_config(args.config)
    net = build_network(config)
    load_weights(net, args.weights, allow_pickle=args.trust_pickle)
    sidecar = export_onnx(net, args.out, weights_sha256=file_sha256(args.weights), opset=args.opset)
    print(f"wrote {sidecar} and its graphs:")
    for path in sorted(args.out.glob(f"picopose_{config.name}_*.onnx")):
        print(f"  {path.name}  {path.stat().st_size / 1e6:.1f} MB")
    if not args.no_verify:
        worst = 0.0
        for graph, diff in verify_onnx(net, sidecar).items():
            print(f"  {graph}: max |onnxruntime - torch| = {diff:.2e}")
            worst = max(worst, diff)
        if worst > 1e-3:
            print(f"export check FAILED: max difference {worst:.2e} > 1e-3")
            return 1
    return 0
