"""The user's own point files: .csv / .tsv tables (with or without header, long tables) and .npy / .npz arrays."""

import numpy as np
import pytest

from tiny_diffusion.data import file_dataset, get_dataset, load_point_file
from tiny_diffusion.errors import UsageError

LONG_TABLE = "dataset\tx\ty\ndino\t1\t2\ndino\t3\t4\nstar\t5\t6\nstar\t7\t8\nstar\t9\t10\n"


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_with_header_reads_all_columns_or_the_chosen_ones(tmp_path):
    path = _write(tmp_path, "points.csv", "x,y,z\n1,2,3\n4.5,-5,6e1\n\n7, 8 ,9\n")  # blank line, spaces
    np.testing.assert_array_equal(load_point_file(path), [[1, 2, 3], [4.5, -5, 60], [7, 8, 9]])
    np.testing.assert_array_equal(load_point_file(path, columns=["z", "x"]), [[3, 1], [60, 4.5], [9, 7]])
    np.testing.assert_array_equal(load_point_file(path, columns="y,x"), [[2, 1], [-5, 4.5], [8, 7]])
    assert load_point_file(path).dtype == np.float64


def test_csv_without_header_takes_columns_by_index(tmp_path):
    path = _write(tmp_path, "points.csv", "1,2,3\n4,5,6\n")
    np.testing.assert_array_equal(load_point_file(path), [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(load_point_file(path, columns=["2", "0"]), [[3, 1], [6, 4]])


def test_a_column_without_numbers_is_left_out(tmp_path):
    path = _write(tmp_path, "labelled.csv", "name,x,y\na,1,2\nb,3,4\n")
    np.testing.assert_array_equal(load_point_file(path), [[1, 2], [3, 4]])


def test_a_long_table_is_filtered_by_subset(tmp_path):
    path = _write(tmp_path, "dozen.tsv", LONG_TABLE)
    np.testing.assert_array_equal(load_point_file(path, subset="dino"), [[1, 2], [3, 4]])
    np.testing.assert_array_equal(load_point_file(path, subset="star", columns=["y"]), [[6], [8], [10]])


def test_npy_and_npz(tmp_path):
    points = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(tmp_path / "p.npy", points)
    np.savez(tmp_path / "one.npz", whatever=points)
    np.savez(tmp_path / "named.npz", points=points, labels=np.arange(4))
    for name in ("p.npy", "one.npz", "named.npz"):
        out = load_point_file(tmp_path / name)
        assert out.dtype == np.float64
        np.testing.assert_array_equal(out, points)
    np.testing.assert_array_equal(load_point_file(tmp_path / "p.npy", columns=["1"]), points[:, [1]])
    np.save(tmp_path / "ints.npy", np.array([[1, 2], [3, 4]]))
    np.testing.assert_array_equal(load_point_file(tmp_path / "ints.npy"), [[1, 2], [3, 4]])


def test_get_dataset_reads_a_path_and_resamples_its_rows(tmp_path):
    path = _write(tmp_path, "dozen.tsv", LONG_TABLE)
    ds = get_dataset(str(path), subset="star")
    assert ds.dim == 2 and str(path) in ds.description and ds.options == ()
    a = ds.sample(200, seed=1)
    assert a.dtype == np.float32 and a.shape == (200, 2)
    np.testing.assert_array_equal(a, ds.sample(200, seed=1))
    assert not np.array_equal(a, ds.sample(200, seed=2))
    rows = {(5.0, 6.0), (7.0, 8.0), (9.0, 10.0)}
    assert {tuple(p) for p in a.tolist()} == rows  # rows drawn with replacement, no jitter, all of them seen
    np.testing.assert_array_equal(ds.support_points(), [[5, 6], [7, 8], [9, 10]])
    np.testing.assert_array_equal(ds.sample(10, seed=3, lines=2), ds.sample(10, seed=3))  # options are ignored
    np.testing.assert_array_equal(file_dataset(path, subset="dino", columns=["x"]).support_points(), [[1], [3]])


def test_get_dataset_tells_a_missing_file_from_an_unknown_name(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        get_dataset(str(tmp_path / "nowhere.csv"))
    with pytest.raises(UsageError, match="unknown dataset 'dinosaur'; choose from .*dino"):
        get_dataset("dinosaur")


def _npz_with_two_arrays(path):
    np.savez(path, a=np.zeros((3, 2)), b=np.ones((3, 2)))


def _npy(array):
    return lambda path: np.save(path, array, allow_pickle=True)


MALFORMED = [
    # (file name, its contents (text, bytes or a writer), load_point_file keywords, expected fragment of the message)
    ("bad.csv", "x,y\n1,2\n3,abc\n", {}, "line 3, column 'y': 'abc' is not a number"),
    ("bad.csv", "1,2\n3,\n", {}, "line 2, column 1: empty cell is not a number"),
    ("bad.csv", "x,y\n1,2\nnan,4\n", {}, "line 3, column 'x': 'nan' is not a finite number"),
    ("bad.csv", "x,y\n1,2\n3,-inf\n", {}, "line 3, column 'y': '-inf' is not a finite number"),
    ("bad.csv", "x,y\n1,2\n", {}, "has 1 data row; a point set needs at least 2"),
    ("bad.csv", "x,y\n", {}, "has 0 data rows"),
    ("bad.csv", "", {}, "is empty"),
    ("bad.csv", "x,y\n1,2\n3,4\n", {"columns": ["x", "z"]}, "no column 'z'; its columns are x, y"),
    ("bad.csv", "1,2\n3,4\n", {"columns": ["x"]}, "no column 'x'; it has no header row, so name columns by 0-based"),
    ("bad.csv", "1,2\n3,4\n", {"columns": ["2"]}, "index 0..1"),
    ("bad.csv", "x,y\n1,2\n3\n", {}, "line 3 has 1 cells but line 1 has 2"),
    ("bad.csv", "x,y\n1,2\n3,4,5\n", {}, "line 3 has 3 cells"),
    ("bad.csv", b"x,y\n1,2\n\xff\xfe,4\n", {}, "cannot be read"),
    ("bad.csv", "name\na\nb\n", {}, "has no column of numbers"),
    ("bad.tsv", LONG_TABLE, {"subset": "dino", "columns": ["dataset"]}, "column 'dataset': 'dino' is not a number"),
    ("bad.npy", _npy(np.zeros((1, 2))), {}, "has 1 data row;"),
    ("bad.tsv", LONG_TABLE, {"subset": "dinosaur"}, "no subset 'dinosaur'; available: dino, star"),
    ("bad.tsv", LONG_TABLE, {}, "holds several datasets (dino, star); choose one with --subset"),
    ("bad.tsv", "x\ty\n1\t2\n3\t4\n", {"subset": "dino"}, "subset 'dino' needs a column named 'dataset'"),
    ("bad.txt", "1,2\n3,4\n", {}, "unknown file type '.txt'"),
    ("bad.npz", _npz_with_two_arrays, {}, "holds arrays a, b; it needs exactly one array, or one named 'points'"),
    ("bad.npy", _npy(np.arange(5.0)), {}, "holds an array of shape (5,)"),
    ("bad.npy", _npy(np.array([[1.0, 2.0], [np.nan, 3.0]])), {}, "row 1, column 0 (0-based) is nan"),
    ("bad.npy", _npy(np.array([[1.0, np.inf], [2.0, 3.0]])), {}, "row 0, column 1 (0-based) is inf"),
    ("bad.npy", _npy(np.array([["a", "b"], ["c", "d"]])), {}, "a point set needs real numbers"),
    ("bad.npy", _npy(np.array([[1, None], [2, 3]], dtype=object)), {}, "cannot be read as a numpy file"),
    ("bad.npy", b"not a numpy file at all", {}, "cannot be read as a numpy file"),
    ("bad.npy", _npy(np.zeros((3, 2))), {"columns": ["x"]}, "no column 'x'; a numpy array's columns are 0-based"),
    ("bad.npy", _npy(np.zeros((3, 2))), {"subset": "dino"}, "numpy files have none"),
]


@pytest.mark.parametrize("name, contents, keywords, fragment", MALFORMED)
def test_a_malformed_file_fails_in_one_line_naming_the_file(tmp_path, name, contents, keywords, fragment):
    path = tmp_path / name
    if isinstance(contents, str):
        path.write_text(contents)
    elif isinstance(contents, bytes):
        path.write_bytes(contents)
    else:
        contents(path)
    with pytest.raises(UsageError) as info:
        load_point_file(path, **keywords)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert fragment in message


def test_a_missing_file_or_a_folder_fails_naming_it(tmp_path):
    for path, fragment in ((tmp_path / "missing.npy", "does not exist"), (tmp_path / "folder.csv", "is not a file")):
        if fragment == "is not a file":
            path.mkdir()
        with pytest.raises(UsageError, match="is not a file|does not exist") as info:
            load_point_file(path)
        assert str(path) in str(info.value) and fragment in str(info.value)
