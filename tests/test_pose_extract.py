"""`extract_pose` and `reid extract-pose`: the pose file, splits, PCK, preview, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from reidcli.cli.app import app
from reidcli.io.h5 import PoseFile, read_pose, write_pose
from reidcli.pose.extract import dataset_images, extract_pose

runner = CliRunner()


def write_gt(root: Path, out: Path | None = None) -> Path:
    """Ground-truth keypoints for every image of the tree (the 16x8 images of conftest)."""
    paths, _ = dataset_images(root)
    rng = np.random.default_rng(0)
    kp = np.ones((len(paths), 17, 3), np.float32)
    kp[..., 0] = rng.uniform(0, 8, (len(paths), 17))
    kp[..., 1] = rng.uniform(0, 16, (len(paths), 17))
    kp[0] = 0  # one image without a person
    return write_pose(out or root / "pose.h5", PoseFile(kp, paths, np.tile([16, 8], (len(paths), 1))))


def test_gt_backend_writes_every_split(market_tree, tmp_path):
    gt = write_gt(market_tree)
    res = extract_pose(market_tree, tmp_path / "p.h5", backend="gt", batch_size=5)
    pf, ref = read_pose(tmp_path / "p.h5"), read_pose(gt)
    assert pf.paths == ref.paths and len(pf.paths) == 12
    np.testing.assert_array_equal(pf.keypoints, ref.keypoints)
    assert pf.image_size.tolist() == [[16, 8]] * 12
    assert pf.attrs["backend"] == "gt" and pf.attrs["n_no_person"] == 1
    assert res.n_missing == 1 and set(res.per_split) == {"train", "query", "gallery"}
    assert sum(n for n, _ in res.per_split.values()) == 12


def test_split_filter_and_no_write(market_tree):
    write_gt(market_tree)
    res = extract_pose(market_tree, None, backend="gt", split=["query"])
    assert res.path is None and res.n_images == 2 and list(res.per_split) == ["query"]


def test_onnx_backend_with_workers(market_tree, tmp_path):
    from test_pose_onnx import heatmap_model

    model = heatmap_model(tmp_path)
    out = tmp_path / "p.h5"
    res = extract_pose(market_tree, out, backend="onnx", model=model, batch_size=4, workers=1,
                       blur_sigma=0.0)
    pf = read_pose(out)
    assert res.n_images == 12 and res.n_missing == 0
    assert pf.keypoints.shape == (12, 17, 3) and (pf.keypoints[..., 2] > 0.9).all()
    assert pf.attrs["model"] == model.name and pf.attrs["output"] == "heatmap"
    assert pf.provenance[-1]["inputs"][0]["path"] == str(model)
    # same answer in-process
    res0 = extract_pose(market_tree, None, backend="onnx", model=model, blur_sigma=0.0)
    assert res0.n_images == 12


def test_cli_reports_pck_and_writes_preview(market_tree, tmp_path):
    write_gt(market_tree)
    out, png = tmp_path / "pose.h5", tmp_path / "prev.png"
    r = runner.invoke(app, ["extract-pose", str(market_tree), "-o", str(out), "--backend", "gt",
                            "--gt", str(market_tree / "pose.h5"), "--preview", str(png), "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["images"] == 12 and report["no_person"] == 1
    assert report["pck@0.2"] == 1.0  # the gt backend against its own file
    assert png.stat().st_size > 0 and read_pose(out).attrs["backend"] == "gt"


def test_cli_pck_table_against_dataset_pose_file(market_tree, tmp_path):
    from test_pose_onnx import heatmap_model

    write_gt(market_tree)  # DATA/pose.h5 is picked up as the ground truth by default
    r = runner.invoke(app, ["extract-pose", str(market_tree), "-o", str(tmp_path / "p.h5"),
                            "--backend", "onnx", "--model", str(heatmap_model(tmp_path))])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("onnx\tPCK@0.2 = ")


@pytest.mark.parametrize("args,code,words", [
    (["--backend", "mediapip"], 1, "did you mean 'mediapipe'"),
    (["--backend", "onnx"], 1, "needs --model"),
    (["--backend", "onnx", "--model", "WRONG"], 1, "outputs [1, 5, 16, 12]; expected 17"),
    (["--backend", "gt", "--model", "OTHER"], 1, "has no keypoints for"),
    (["--input-size", "256by192"], 2, "HxW"),
    (["--input-size", "0x0"], 2, "must be HxW with positive ints, e.g. 256x192; got '0x0'"),  # input size 0
    (["--split", "nope", "--backend", "gt"], 1, "no 'nope' split"),
    (["--backend", "onnx", "--ckpt", "RIGHT"], 2, "--ckpt does not apply to --backend onnx, which reads --model"),
    (["--backend", "rbnet", "--model", "OTHER"], 2, "--model does not apply to --backend rbnet, which reads --ckpt"),
    (["--model", "RIGHT"], 2, "--model does not apply to --backend mediapipe"),
    (["--backend", "onnx", "--model", "RIGHT", "--std", "1,0,1"], 1, "--std must be three positive numbers"),
    (["--backend", "onnx", "--model", "RIGHT", "--refine", "best"], 1, "--refine must be one of dark, quarter"),
    (["--device", "cuda"], 1, "--device cuda: --backend mediapipe runs on the CPU only"),
    (["--backend", "gt", "--device", "cuda:1"], 1, "--device cuda:1: --backend gt computes nothing"),
    (["--backend", "gt", "--device", "tpu"], 1, "--device must be auto | cpu | cuda | cuda:N; got 'tpu'"),
])
def test_cli_errors_are_one_line(market_tree, tmp_path, args, code, words):
    from test_pose_onnx import heatmap_model

    write_gt(market_tree)
    other = tmp_path / "other.h5"
    write_pose(other, PoseFile(np.zeros((1, 17, 3), np.float32), ["x.jpg"], np.array([[16, 8]])))
    files = {"WRONG": lambda: heatmap_model(tmp_path, channels=5), "RIGHT": lambda: heatmap_model(tmp_path),
             "OTHER": lambda: other}
    args = [str(files[a]()) if a in files else a for a in args]
    out = tmp_path / "p.h5"
    r = runner.invoke(app, ["extract-pose", str(market_tree), "-o", str(out), *args])
    assert r.exit_code == code, r.output
    assert words in r.stderr and "Traceback" not in r.output
    assert not out.exists()
    if code == 1:
        assert len(r.stderr.strip().splitlines()) == 1 or "error:" in r.stderr.strip().splitlines()[-1]


def test_library_call_gives_what_the_cli_prints(market_tree, tmp_path):
    """PCK (DATA/pose.h5 found by gt="auto") and the preview come from `extract_pose` itself,
    the same numbers as scoring the written file afterwards."""
    from test_pose_onnx import heatmap_model

    from reidcli.pose.pck import pck_files

    write_gt(market_tree)
    out, png = tmp_path / "p.h5", tmp_path / "prev.png"
    res = extract_pose(market_tree, out, backend="onnx", model=heatmap_model(tmp_path), gt="auto", preview=png)
    ref = pck_files(out, market_tree / "pose.h5")
    assert res.pck.value == ref.value and res.pck.n_joints == ref.n_joints > 0
    assert res.preview == png and png.stat().st_size > 0
    report = res.to_dict()
    assert report["pck@0.2"] == round(ref.value, 4) and report["preview"] == str(png)
    # without writing: the same score, and the error names the predictions
    assert extract_pose(market_tree, None, backend="onnx", model=heatmap_model(tmp_path),
                        gt=market_tree / "pose.h5").pck.value == ref.value
    # "auto" never scores the gt backend against its own source, and None never scores
    assert extract_pose(market_tree, None, backend="gt", gt="auto").pck is None
    assert extract_pose(market_tree, None, backend="gt").pck is None


def test_library_messages_name_python_parameters(market_tree):
    from reidcli.utils.params import ParamError

    write_gt(market_tree)
    for kw, param in (({"batch_size": 0}, "batch_size"), ({"workers": -1}, "workers"),
                      ({"ckpt": "m.pt"}, "ckpt")):
        with pytest.raises(ParamError, match=f"^{param} ") as e:
            extract_pose(market_tree, None, backend="gt", **kw)
        assert e.value.param == param
    from reidcli.pose.pck import pck

    with pytest.raises(ParamError, match=r"^alpha must be a float in \(0, 1\]; got 0"):
        pck(np.zeros((1, 17, 3)), np.zeros((1, 17, 3)), alpha=0)


def test_output_folder_is_refused(market_tree, tmp_path):
    write_gt(market_tree)
    r = runner.invoke(app, ["extract-pose", str(market_tree), "-o", str(tmp_path), "--backend", "gt"])
    assert r.exit_code == 1 and "is a folder" in r.stderr


def test_mediapipe_on_tree_counts_missing_people(market_tree, tmp_path):
    """Random-noise crops hold nobody: every image gets score-0 keypoints, no crash."""
    from reidcli.pose.backends.mediapipe import available

    ok, why = available()
    if not ok:
        pytest.skip(f"mediapipe backend unavailable: {why}")
    res = extract_pose(market_tree, tmp_path / "p.h5", split=["query"])
    assert res.n_images == 2 and res.n_missing == 2
    assert not read_pose(tmp_path / "p.h5").keypoints.any()


def test_device_reaches_the_backend_and_cpu_backends_take_cpu_and_auto(market_tree, tmp_path, monkeypatch):
    """`reid extract-pose --device` (issue 16: one --device in every computing command): the
    value reaches the backend; gt (like mediapipe) accepts cpu and auto."""
    import reidcli.pose.backends.onnx as onnx_backend
    from test_pose_onnx import heatmap_model

    write_gt(market_tree)
    for device in ("cpu", "auto"):
        r = runner.invoke(app, ["extract-pose", str(market_tree), "-o", str(tmp_path / f"{device}.h5"),
                                "--backend", "gt", "--device", device])
        assert r.exit_code == 0, r.output
    seen = []
    real = onnx_backend._session
    monkeypatch.setattr(onnx_backend, "_session", lambda model, device="auto": seen.append(device) or real(model, device))
    r = runner.invoke(app, ["extract-pose", str(market_tree), "-o", str(tmp_path / "o.h5"), "--backend", "onnx",
                            "--model", str(heatmap_model(tmp_path)), "--device", "cpu", "-j", "0"])
    assert r.exit_code == 0, r.output
    assert seen == ["cpu"] and read_pose(tmp_path / "o.h5").keypoints.shape == (12, 17, 3)
