"""The onnx backend on tiny models built here: heat-map and SimCC decoding, shape checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reidcli.pose.heatmaps import render_heatmaps
from reidcli.utils.errors import ConfigError, FormatError

onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install -e '.[test]')")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[test]')")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

IN_H, IN_W = 64, 48  # model input; heat-maps at a quarter, as HRNet's
# Keypoints the constant model "sees", in input pixels, away from the borders.
TRUTH = np.stack([np.linspace(12.3, 35.6, 17), np.linspace(8.7, 55.1, 17), np.ones(17)], 1).astype(np.float32)


def constant_model(path: Path, outputs: dict[str, np.ndarray], batch="N", in_hw=(IN_H, IN_W)) -> Path:
    """An ONNX graph whose outputs are fixed tensors broadcast over the input batch:
    out = const + 0 * mean(x). Enough to test preprocessing-free decoding and shape checks."""
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2, 3], keepdims=1),
             helper.make_node("Mul", ["m", "zero"], ["z"])]
    inits = [numpy_helper.from_array(np.zeros((1,), np.float32), "zero")]
    outs = []
    for name, value in outputs.items():
        inits.append(numpy_helper.from_array(value[None].astype(np.float32), f"{name}_c"))
        z = "z" if value.ndim == 3 else "z3"
        if value.ndim == 2 and not any(n.output[0] == "z3" for n in nodes):
            nodes.append(helper.make_node("Squeeze", ["z", "ax"], ["z3"]))
            inits.append(numpy_helper.from_array(np.array([3], np.int64), "ax"))
        nodes.append(helper.make_node("Add", [z, f"{name}_c"], [name]))
        outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [batch, *value.shape]))
    graph = helper.make_graph(nodes, "tiny_pose", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [batch, 3, *in_hw])], outs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def heatmap_model(tmp_path: Path, channels: int = 17, **kw) -> Path:
    heat, _ = render_heatmaps(TRUTH, (IN_H // 4, IN_W // 4), (IN_H, IN_W), sigma=1.5)
    if channels != 17:
        heat = np.repeat(heat[:1], channels, axis=0)
    return constant_model(tmp_path / f"hm{channels}.onnx", {"heatmaps": heat}, **kw)


def expected_in_image(backend, h: int, w: int) -> np.ndarray:
    return backend._placement(h, w).to_image(TRUTH[:, :2])


def test_heatmap_model_decodes_to_original_pixels(tmp_path):
    from reidcli.pose.backends import get_backend

    be = get_backend("onnx", model=heatmap_model(tmp_path), refine="dark", blur_sigma=0.0)
    assert be.kind == "heatmap" and be.input_size == (IN_H, IN_W)
    imgs = [np.zeros((128, 64, 3), np.uint8), np.full((40, 90, 3), 200, np.uint8)]
    kp = be.predict(imgs, ["a.jpg", "b.jpg"])
    assert kp.shape == (2, 17, 3) and kp.dtype == np.float32
    for img, k in zip(imgs, kp):
        want = expected_in_image(be, *img.shape[:2])
        px_per_input_px = 1 / be._placement(*img.shape[:2]).scale
        assert np.abs(k[:, :2] - want).max() < 0.05 * px_per_input_px
    assert kp[..., 2].min() > 0.9
    # the crop fills the box (padding 1.25): keypoints spread inside the tall crop
    assert 0 <= kp[0, :, 1].min() and kp[0, :, 1].max() <= 128


def test_placement_matches_mmpose_top_down_box():
    from reidcli.pose.backends.onnx import OnnxBackend

    be = OnnxBackend.__new__(OnnxBackend)
    be.input_size, be.box_padding = (256, 192), 1.25
    p = be._placement(128, 64)  # tall crop: the width is widened to 3:4, then padded
    assert p.scale == pytest.approx(192 / (96 * 1.25))
    centre = p.to_image(np.array([[96.0, 128.0]]))
    np.testing.assert_allclose(centre, [[32.0, 64.0]])


def test_simcc_model(tmp_path):
    from reidcli.pose.backends import get_backend

    k = 2  # SimCC split ratio
    sx = np.zeros((17, IN_W * k), np.float32)
    sy = np.zeros((17, IN_H * k), np.float32)
    sx[np.arange(17), np.round(TRUTH[:, 0] * k).astype(int)] = 0.8
    sy[np.arange(17), np.round(TRUTH[:, 1] * k).astype(int)] = 0.6
    path = constant_model(tmp_path / "simcc.onnx", {"simcc_x": sx, "simcc_y": sy})
    be = get_backend("onnx", model=path)
    assert be.kind == "simcc"
    kp = be.predict([np.zeros((128, 64, 3), np.uint8)], ["a.jpg"])[0]
    want = expected_in_image(be, 128, 64)
    assert np.abs(kp[:, :2] - want).max() <= 0.5 / k / be._placement(128, 64).scale + 1e-4
    np.testing.assert_allclose(kp[:, 2], 0.6)


def test_fixed_batch_of_one_runs_image_by_image(tmp_path):
    from reidcli.pose.backends import get_backend

    be = get_backend("onnx", model=heatmap_model(tmp_path, batch=1), blur_sigma=0.0)
    kp = be.predict([np.zeros((128, 64, 3), np.uint8)] * 3, ["a", "b", "c"])
    assert kp.shape == (3, 17, 3) and np.allclose(kp[0], kp[2])


def test_wrong_output_shape_is_one_line_error(tmp_path):
    from reidcli.pose.backends import get_backend

    with pytest.raises(FormatError, match=r"outputs \[1, 5, 16, 12\]; expected 17 COCO heat-maps") as e:
        get_backend("onnx", model=heatmap_model(tmp_path, channels=5))
    assert "\n" not in str(e.value)


def test_input_size_conflict_and_bad_files(tmp_path):
    from reidcli.pose.backends import get_backend

    with pytest.raises(ConfigError, match="fixed input of 64x48"):
        get_backend("onnx", model=heatmap_model(tmp_path), input_size=(256, 192))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(FormatError, match="not a loadable ONNX model"):
        get_backend("onnx", model=junk)
    with pytest.raises(ConfigError, match="needs --model"):
        get_backend("onnx")


def test_device_picks_the_onnxruntime_providers(tmp_path):
    """--device cpu: the CPU provider alone; auto: every installed one; cuda:N: the CUDA
    provider on GPU N, or one line saying the installed onnxruntime has none."""
    import onnxruntime as ort

    from reidcli.pose.backends import get_backend
    from reidcli.pose.backends.onnx import providers_for
    from reidcli.utils.params import ParamError

    both = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert providers_for("cpu", both) == ["CPUExecutionProvider"]
    assert providers_for("auto", both) == both
    assert providers_for("cuda:1", both) == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    assert providers_for("cuda", both)[0] == ("CUDAExecutionProvider", {"device_id": 0})
    with pytest.raises(ConfigError, match=r"^--device cuda: the installed onnxruntime has no CUDA provider "
                                          r"\(it has CPUExecutionProvider\); pip install onnxruntime-gpu"):
        providers_for("cuda", ["CPUExecutionProvider"])
    with pytest.raises(ParamError, match="^device must be auto | cpu | cuda | cuda:N; got 'gpu'"):
        providers_for("gpu", both)
    be = get_backend("onnx", model=heatmap_model(tmp_path), device="cpu")
    assert be.sess.get_providers() == ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(ConfigError, match="no CUDA provider"):
            get_backend("onnx", model=heatmap_model(tmp_path), device="cuda")
