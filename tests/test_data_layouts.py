"""Dataset layout parsers on tiny trees named exactly like the real datasets."""

from __future__ import annotations

import logging

import pytest

from fixtures_layouts import (
    CUHK03_NAMES, MARKET_NAMES, build_bbox, build_cuhk03, build_duke, build_market, build_msmt17,
    build_regdb, build_sysu, touch,
)
from reidcli.data.layouts import DATASETS, detect_format, load_dataset, resolve_format
from reidcli.utils.errors import ConfigError, InputError


def paths(ds, split):
    return [r.path for r in ds.split(split)]


# ---------------------------------------------------------------- Market / Duke / CUHK03
def test_market_protocol(tmp_path):
    root = build_market(tmp_path)
    ds = load_dataset(tmp_path)  # the parent folder is enough
    assert ds.format == "market1501" and ds.root == root
    assert list(ds.splits) == ["train", "query", "gallery"]
    assert paths(ds, "train") == sorted(paths(ds, "train")) and len(ds.split("train")) == 4
    assert {(r.pid, r.camid) for r in ds.split("train")} == {(2, 0), (2, 1), (7, 0), (7, 2)}
    gal = {r.path.split("/")[1]: r for r in ds.split("gallery")}
    assert gal["-1_c2s1_000002_01.jpg"].pid == -1 and gal["-1_c2s1_000002_01.jpg"].camid == 1
    assert gal["0000_c1s1_000001_01.jpg"].pid == 0  # distractor: an ordinary negative
    assert gal["0007_c6s2_001351_01.jpg"].camid == 5
    assert ds.meta["junk_in_gallery"] == 1 and ds.meta["distractors_in_gallery"] == 2
    assert all(r.modality == 0 for recs in ds.splits.values() for r in recs)


def test_market_junk_and_distractors_leave_train_and_query(tmp_path):
    names = {k: list(v) for k, v in MARKET_NAMES.items()}
    names["bounding_box_train"] += ["-1_c1s1_000401_03.jpg", "0000_c2s1_000001_02.jpg"]
    names["query"] += ["0000_c1s1_000003_00.jpg"]
    ds = load_dataset(build_market(tmp_path, names), format="market")
    assert all(r.pid > 0 for r in ds.split("train") + ds.split("query"))
    assert len(ds.split("train")) == 4 and len(ds.split("query")) == 2
    assert any("junk" in n and "train" in n for n in ds.meta["notes"])


def test_market_real_jpegs_from_conftest(market_tree):
    ds = load_dataset(market_tree)
    assert [len(ds.split(s)) for s in ("train", "query", "gallery")] == [6, 2, 4]
    assert sorted(r.pid for r in ds.split("gallery")) == [-1, 0, 2, 7]


def test_market_bad_name_is_refused(tmp_path):
    root = build_market(tmp_path)
    touch(root / "query" / "holiday.jpg")
    with pytest.raises(InputError, match=r"query/holiday\.jpg: not a market1501 image name"):
        load_dataset(root)


def test_market_hidden_and_non_image_files_ignored(tmp_path):
    root = build_market(tmp_path)
    touch(root / "query" / "._0002_c1s1_001051_00.jpg")
    touch(root / "query" / "readme.txt")
    assert len(load_dataset(root).split("query")) == 2


def test_market_missing_query_folder(tmp_path):
    names = {k: v for k, v in MARKET_NAMES.items() if k != "query"}
    build_market(tmp_path, names)
    with pytest.raises(InputError, match=r"Market-1501-v15\.09\.15/query: missing query folder"):
        load_dataset(tmp_path)


def test_market_empty_split_folder(tmp_path):
    names = {**MARKET_NAMES, "bounding_box_test": []}
    with pytest.raises(InputError, match=r"bounding_box_test: no images for the gallery split"):
        load_dataset(build_market(tmp_path, names))


def test_duke(tmp_path):
    root = build_duke(tmp_path)
    assert detect_format(tmp_path) == "dukemtmc"
    ds = load_dataset(root, format="DukeMTMC-reID")
    assert {r.camid for r in ds.split("train")} == {0, 1, 5, 7}
    assert [r.pid for r in ds.split("query")] == [5, 8]


def test_format_mismatch_names_the_real_layout(tmp_path):
    build_duke(tmp_path)
    with pytest.raises(InputError, match=r"not a market1501 tree .*looks like dukemtmc; pass --format dukemtmc"):
        load_dataset(tmp_path, format="market1501")


def test_cuhk03_variants(tmp_path):
    root = build_cuhk03(tmp_path)
    assert detect_format(tmp_path) == "cuhk03"
    det = load_dataset(tmp_path)
    assert det.root == root / "detected" and det.meta["variant"] == "detected"
    assert paths(det, "train")[0] == "bounding_box_train/0001_c1_1.png"
    assert {r.camid for r in det.split("gallery")} == {0, 1}
    lab = load_dataset(tmp_path, format="cuhk03-labeled")
    assert lab.root == root / "labeled" and len(lab.split("gallery")) == 2
    assert load_dataset(root, cuhk03_variant="labeled").meta["variant"] == "labeled"
    assert load_dataset(root / "labeled").meta["variant"] == "labeled"  # a variant folder itself


def test_cuhk03_refusals(tmp_path):
    root = build_bbox(tmp_path / "cuhk03-np" / "detected", CUHK03_NAMES).parent
    with pytest.raises(InputError, match=r"cuhk03-np/labeled: missing CUHK03-NP 'labeled' folder"):
        load_dataset(root, cuhk03_variant="labeled")
    with pytest.raises(ConfigError, match=r"cuhk03_variant must be one of detected, labeled"):
        load_dataset(root, cuhk03_variant="auto")
    with pytest.raises(ConfigError, match=r"'detected' folder but cuhk03_variant is 'labeled'"):
        load_dataset(root / "detected", cuhk03_variant="labeled")


# ---------------------------------------------------------------- MSMT17
@pytest.mark.parametrize("version", ["V1", "V2"])
def test_msmt17(tmp_path, version):
    root = build_msmt17(tmp_path, version)
    ds = load_dataset(tmp_path)
    tr = "train" if version == "V1" else "mask_train_v2"
    assert ds.format == "msmt17" and ds.root == root and ds.meta["version"] == version
    assert list(ds.splits) == ["train", "val", "query", "gallery"]
    assert len(ds.split("train")) == 4 and paths(ds, "val") == [f"{tr}/0001/0001_002_03_0303noon_0200_2.jpg"]
    assert set(paths(ds, "val")) <= set(paths(ds, "train"))
    cams = {r.path.rsplit("/", 1)[1]: r.camid for r in ds.split("train")}
    assert cams["0000_000_01_0303morning_0015_0.jpg"] == 0 and cams["0001_000_15_0303afternoon_0107_0.jpg"] == 14
    assert [r.pid for r in ds.split("gallery")] == [0, 2, 3]  # pid 0 is a real MSMT17 identity


def test_msmt17_list_names_missing_image(tmp_path):
    root = build_msmt17(tmp_path)
    (root / "test" / "0002" / "0002_001_12_0113noon_0050_0.jpg").unlink()
    with pytest.raises(InputError, match=r"list_gallery\.txt:2 names .*0002_001_12_0113noon_0050_0\.jpg, which does not exist"):
        load_dataset(root)


def test_msmt17_refusals(tmp_path):
    root = build_msmt17(tmp_path)
    (root / "list_train.txt").write_text("0000/0000_000_01_0303morning_0015_0.jpg zero\n")
    with pytest.raises(InputError, match=r"list_train\.txt:1: expected '<image path> <integer id>'"):
        load_dataset(root)
    (root / "list_train.txt").write_text("0000/badname.jpg 0\n")
    touch(root / "train" / "0000" / "badname.jpg")
    with pytest.raises(InputError, match=r"not an MSMT17 image name"):
        load_dataset(root)
    (root / "list_query.txt").unlink()
    with pytest.raises(InputError, match=r"list_query\.txt: missing MSMT17 list file"):
        load_dataset(root)


# ---------------------------------------------------------------- SYSU-MM01
def test_sysu_protocol(tmp_path):
    root = build_sysu(tmp_path)
    ds = load_dataset(tmp_path)
    assert ds.format == "sysu" and ds.root == root
    assert {r.pid for r in ds.split("train")} == {1, 2, 3}
    assert {r.camid for r in ds.split("train")} == {0, 1, 2, 5}
    q, g = ds.split("query"), ds.split("gallery")
    assert {r.pid for r in q} == {r.pid for r in g} == {6, 7}
    assert {(r.camid, r.modality) for r in q} == {(2, 1), (5, 1)}
    assert {(r.camid, r.modality) for r in g} == {(0, 0), (1, 0)}
    assert len(g) == 6  # every visible image: the evaluation draws the shots
    assert "cam3/0006/0001.jpg" in paths(ds, "query")


def test_sysu_refusals(tmp_path):
    root = build_sysu(tmp_path)
    (root / "exp" / "test_id.txt").write_text("6,7,9\n")
    with pytest.raises(InputError, match=r"test_id\.txt lists id 9, but no cam\*/0009/ folder"):
        load_dataset(root)
    (root / "exp" / "test_id.txt").write_text("2,6,7")
    with pytest.raises(InputError, match=r"ids \[2\] are also training ids"):
        load_dataset(root)
    (root / "exp" / "test_id.txt").write_text("6;7")
    with pytest.raises(InputError, match=r"'6;7' is not an identity id"):
        load_dataset(root)
    (root / "exp" / "test_id.txt").unlink()
    with pytest.raises(InputError, match=r"exp/test_id\.txt: missing SYSU-MM01 id file"):
        load_dataset(root)


# ---------------------------------------------------------------- RegDB
def test_regdb_trials(tmp_path):
    root = build_regdb(tmp_path)
    ds = load_dataset(tmp_path)
    assert ds.format == "regdb" and ds.root == root and ds.meta["trial"] == 1
    assert {(r.camid, r.modality) for r in ds.split("train")} == {(0, 0), (1, 1)}
    assert all(r.path.startswith("Visible/") and r.modality == 0 for r in ds.split("query"))
    assert all(r.path.startswith("Thermal/") and r.modality == 1 for r in ds.split("gallery"))
    assert [r.pid for r in ds.split("query")] == [0, 0, 1, 1]
    t2 = load_dataset(root, regdb_trial=2)
    assert set(paths(t2, "query")) == {p for p in paths(ds, "train") if p.startswith("Visible/")}


def test_regdb_refusals(tmp_path):
    root = build_regdb(tmp_path, trials=(1,))
    with pytest.raises(InputError, match=r"idx/train_visible_3\.txt: missing RegDB list for trial 3"):
        load_dataset(root, regdb_trial=3)
    for bad in (0, 11, "2"):
        with pytest.raises(ConfigError, match=r"--regdb-trial must be an integer in \[1, 10\]"):
            load_dataset(root, regdb_trial=bad)
    first = (root / "idx" / "test_thermal_1.txt").read_text().split()[0]
    (root / first).unlink()
    with pytest.raises(InputError, match=r"test_thermal_1\.txt:1 names .*which does not exist"):
        load_dataset(root)


# ---------------------------------------------------------------- generic layouts
def test_labelled_folder_with_cam_regex(tmp_path):
    for pid in ("0001", "0012"):
        for cam in ("c1", "c3"):
            touch(tmp_path / pid / f"{pid}_{cam}_x.jpg")
    assert detect_format(tmp_path) == "folder"
    ds = load_dataset(tmp_path)
    assert list(ds.splits) == ["train"] and {r.camid for r in ds.split("train")} == {0}
    ds = load_dataset(tmp_path, cam_regex=r"_c(\d+)_")
    assert {(r.pid, r.camid) for r in ds.split("train")} == {(1, 0), (1, 1), (12, 0), (12, 1)}
    assert ds.meta["cameras"] == {"1": 0, "3": 1}


def test_labelled_folder_with_split_folders(tmp_path):
    for split, pid in (("train", 1), ("query", 2), ("gallery", 2), ("gallery", 3)):
        touch(tmp_path / split / str(pid) / f"cam{pid % 2}" / "a.png")
    assert detect_format(tmp_path) == "folder"  # query/ alone does not make a Market tree
    ds = load_dataset(tmp_path, format="labelled", cam_regex=r"(?P<cam>cam\d)/")
    assert list(ds.splits) == ["train", "query", "gallery"]
    assert paths(ds, "gallery") == ["gallery/2/cam0/a.png", "gallery/3/cam1/a.png"]
    assert [r.camid for r in ds.split("gallery")] == [0, 1]


def test_labelled_folder_refusals(tmp_path):
    touch(tmp_path / "0001" / "a.jpg")
    touch(tmp_path / "bob" / "b.jpg")
    with pytest.raises(InputError, match=r"bob: 'bob' is not an integer identity"):
        load_dataset(tmp_path, format="folder")
    with pytest.raises(ConfigError, match=r"needs a group"):
        load_dataset(tmp_path / "0001", format="unlabelled", cam_regex=r"c\d")
    with pytest.raises(ConfigError, match=r"not a valid regular expression"):
        load_dataset(tmp_path, format="unlabelled", cam_regex=r"c(\d")
    with pytest.raises(InputError, match=r"--cam-regex .* finds no camera in '0001/a\.jpg'"):
        load_dataset(tmp_path, format="unlabelled", cam_regex=r"_c(\d)")


def test_folder_format_on_market_tree_names_market(tmp_path):
    build_market(tmp_path)
    with pytest.raises(InputError, match=r"not a folder tree .*looks like market1501"):
        load_dataset(tmp_path / "Market-1501-v15.09.15", format="folder")


def test_unlabelled(tmp_path):
    touch(tmp_path / "b" / "deep" / "x.JPG")
    touch(tmp_path / "a.png")
    touch(tmp_path / "notes.txt")
    touch(tmp_path / ".cache" / "y.jpg")
    assert detect_format(tmp_path) == "unlabelled"
    ds = load_dataset(tmp_path)
    assert paths(ds, "train") == ["a.png", "b/deep/x.JPG"]
    assert all(r.pid == -1 and r.camid == 0 for r in ds.split("train"))


def test_camera_folders_without_ids_are_unlabelled_not_sysu(tmp_path):
    for cam in ("cam1", "cam2", "cam3"):
        touch(tmp_path / cam / "000123.jpg")
    ds = load_dataset(tmp_path, cam_regex=r"cam(\d)/")
    assert ds.format == "unlabelled" and [r.camid for r in ds.split("train")] == [0, 1, 2]


def test_sysu_without_exp_is_named(tmp_path):
    root = build_sysu(tmp_path)
    for f in (root / "exp").iterdir():
        f.unlink()
    (root / "exp").rmdir()
    with pytest.raises(InputError, match=r"SYSU-MM01/exp: missing SYSU-MM01 exp folder"):
        load_dataset(tmp_path)


def test_unlabelled_forced_on_a_market_tree(tmp_path):
    build_market(tmp_path)
    ds = load_dataset(tmp_path, format="unlabelled")
    assert len(ds.split("train")) == 11 and {r.pid for r in ds.split("train")} == {-1}


def test_csv_with_header(tmp_path):
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        touch(tmp_path / "img" / name)
    csv = tmp_path / "list.csv"
    csv.write_text("path,pid,camid,modality,split\nimg/b.jpg,3,1,1,query\nimg/a.jpg,-1,0,0,train\n"
                   "img/c.jpg,3,0,0,gallery\n")
    assert detect_format(csv) == "csv"
    ds = load_dataset(csv)
    assert ds.root == tmp_path and list(ds.splits) == ["train", "query", "gallery"]
    assert ds.split("query")[0].modality == 1 and ds.split("train")[0].pid == -1
    same = load_dataset(tmp_path, csv="list.csv")
    assert same.splits == ds.splits


def test_csv_without_header(tmp_path):
    touch(tmp_path / "x" / "1.jpg")
    touch(tmp_path / "x" / "0.jpg")
    (tmp_path / "l.csv").write_text("x/1.jpg,5,2\n./x/0.jpg,4,0\n")
    ds = load_dataset(tmp_path / "l.csv")
    assert paths(ds, "train") == ["x/0.jpg", "x/1.jpg"] and [r.camid for r in ds.split("train")] == [0, 2]
    (tmp_path / "l.csv").write_text("x/1.jpg,5,2,gallery\n")
    assert list(load_dataset(tmp_path / "l.csv", format="csv").splits) == ["gallery"]


@pytest.mark.parametrize("body,message", [
    ("path,pid,camid\nx/missing.jpg,1,0\n", r"l\.csv:2 names .*missing\.jpg, which does not exist"),
    ("path,pid,camid\nx/a.jpg,one,0\n", r"l\.csv:2: pid must be an integer >= -1; got 'one'"),
    ("x/a.jpg,1,-1\n", r"l\.csv:1: camid \(0-based\) must be an integer >= 0"),
    ("x/a.jpg,1,0,2\n", r"modality must be an integer in \[0, 1\]"),
    ("image,person\nx/a.jpg,1\n", r"lacks column\(s\) camid"),
    ("x/a.jpg,1,0\nx/a.jpg,1,0\n", r"l\.csv:2: x/a\.jpg is listed twice in split train"),
    ("../a.jpg,1,0\n", r"is not a path inside"),
    ("path,pid,camid\n", r"only a header"),
    ("", r"empty CSV list"),
])
def test_csv_refusals(tmp_path, body, message):
    touch(tmp_path / "x" / "a.jpg")
    (tmp_path / "l.csv").write_text(body)
    with pytest.raises(InputError, match=message):
        load_dataset(tmp_path / "l.csv")


# ---------------------------------------------------------------- registry and detection
def test_registry_names_and_aliases():
    assert set(DATASETS.names()) == {"market1501", "dukemtmc", "msmt17", "cuhk03", "sysu", "regdb",
                                     "folder", "unlabelled", "csv"}
    for alias, name in [("market", "market1501"), ("Market-1501", "market1501"), ("duke", "dukemtmc"),
                        ("MSMT17_V2", "msmt17"), ("cuhk03-np", "cuhk03"), ("SYSU-MM01", "sysu"),
                        ("unlabeled", "unlabelled")]:
        assert resolve_format(alias)[0] == name
    assert resolve_format("cuhk03_labeled") == ("cuhk03", {"cuhk03_variant": "labeled"})
    assert resolve_format("regdb-trial3") == ("regdb", {"regdb_trial": 3})  # the CLI's way to a trial
    assert resolve_format("RegDB_trial10") == ("regdb", {"regdb_trial": 10})


def test_unknown_format_and_option(tmp_path):
    build_market(tmp_path)
    with pytest.raises(ConfigError, match=r"unknown dataset format 'markt'; did you mean 'market1501'\?"):
        load_dataset(tmp_path, format="markt")
    with pytest.raises(ConfigError, match=r"unknown dataset option 'trial'"):
        load_dataset(tmp_path, trial=1)


def test_inapplicable_option_warns(tmp_path, caplog):
    build_market(tmp_path)
    with caplog.at_level(logging.INFO, logger="reidcli.data.layouts"):
        ds = load_dataset(tmp_path, regdb_trial=2, cam_regex=None)
    assert "regdb_trial does not apply to the market1501 layout" in caplog.text
    assert ds.summary() in caplog.text  # the one-line summary is logged


def test_root_refusals(tmp_path):
    with pytest.raises(InputError, match=r"nope: no such folder or file"):
        load_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"empty: empty folder"):
        load_dataset(tmp_path / "empty")
    touch(tmp_path / "docs" / "readme.txt")
    with pytest.raises(InputError, match=r"docs: no dataset layout recognised and no images found"):
        detect_format(tmp_path / "docs")
    touch(tmp_path / "f.h5")
    with pytest.raises(InputError, match=r"f\.h5: a file, not a dataset folder"):
        load_dataset(tmp_path / "f.h5")


def test_several_datasets_under_one_root(tmp_path):
    build_market(tmp_path)
    build_duke(tmp_path)
    with pytest.raises(InputError, match=r"holds several datasets: dukemtmc .*market1501.*; pass one of these folders, or --format dukemtmc / market1501"):
        load_dataset(tmp_path)
    assert load_dataset(tmp_path, format="duke").format == "dukemtmc"
    assert load_dataset(tmp_path, format="market").root == tmp_path / "Market-1501-v15.09.15"


@pytest.mark.parametrize("builder,name", [(build_market, "market1501"), (build_duke, "dukemtmc"),
                                          (build_cuhk03, "cuhk03"), (build_msmt17, "msmt17"),
                                          (build_sysu, "sysu"), (build_regdb, "regdb")])
def test_detection_and_every_wrong_format(tmp_path, builder, name):
    builder(tmp_path)
    assert detect_format(tmp_path) == name
    for other in ("market1501", "dukemtmc", "cuhk03", "msmt17", "sysu", "regdb"):
        if other != name:
            with pytest.raises(InputError, match=rf"not a {other} tree .*looks like {name}"):
                load_dataset(tmp_path, format=other)


# ---------------------------------------------------------------- reid info DATA_DIR
def _run(*args):
    from typer.testing import CliRunner

    from reidcli.cli.app import app

    return CliRunner().invoke(app, ["info", *map(str, args)])


def test_cli_info_dataset_table(tmp_path):
    build_sysu(tmp_path)
    res = _run(tmp_path)
    assert res.exit_code == 0, res.output
    assert "sysu at" in res.stdout and "query: 2 ids, 6 images, 2 cameras" in res.stdout
    assert "gallery" in res.stdout and "0,1" in res.stdout  # the modalities column of train


def test_cli_info_dataset_json_and_format(tmp_path):
    import json

    build_cuhk03(tmp_path)
    res = _run(tmp_path, "--format", "cuhk03-labeled", "--json")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["layout"] == "cuhk03" and info["meta"]["variant"] == "labeled"
    assert info["splits"]["gallery"] == {"images": 2, "ids": 2, "unlabelled": 0, "cameras": 2,
                                         "modalities": [0]}


@pytest.mark.parametrize("setup,args,words", [
    (lambda p: build_sysu(p), ["--format", "market"], "looks like sysu"),
    (lambda p: build_market(p, {k: v for k, v in MARKET_NAMES.items() if k != "query"}), [],
     "query: missing query folder"),
    (lambda p: touch(p / "notes.txt"), [], "no dataset layout recognised"),
    (lambda p: build_market(p), ["--format", "mkt"], "did you mean 'market1501'"),
])
def test_cli_info_dataset_refusals(tmp_path, setup, args, words):
    setup(tmp_path)
    res = _run(tmp_path, *args)
    assert res.exit_code == 1
    assert words in res.stderr and "reid info: error:" in res.stderr
    assert "Traceback" not in res.output and res.stdout == ""


def test_cli_info_format_on_a_file_is_refused(tmp_path):
    touch(tmp_path / "f.h5")
    res = _run(tmp_path / "f.h5", "--format", "market")
    assert res.exit_code == 1 and "--format applies to a dataset folder" in res.stderr
