import numpy as np

from reidcli.io import h5


def test_features_roundtrip(tmp_path):
    ff = h5.FeaturesFile(splits={"query": h5.SplitFeatures(
        np.arange(8, dtype=np.float32).reshape(2, 4), ["a.jpg", "b.jpg"],
        np.array([1, -1]), np.array([0, 1]))}, root="/data", attrs={"normalized": True})
    h5.write_features(tmp_path / "f.h5", ff)
    back = h5.read_features(tmp_path / "f.h5")
    assert back.root == "/data" and back.normalized
    np.testing.assert_array_equal(back.splits["query"].features, ff.splits["query"].features)
    assert back.splits["query"].paths == ["a.jpg", "b.jpg"]
