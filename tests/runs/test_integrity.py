"""Integrity of run directories: every file is recorded in manifest.json, and a flipped byte, a truncation or a
missing file anywhere is reported in one line (exit code 2) by every command that reads the run."""

import json
import shutil

import numpy as np
import pytest

from conftest import TINY_POINTS, flags
from tiny_diffusion.cli.main import main
from tiny_diffusion.errors import UsageError
from tiny_diffusion.runs.files import RUN_FILES, load_run
from tiny_diffusion.runs.integrity import MANIFEST, Corrupt, check_manifest, manifest, seal, unseal

TINY = flags(TINY_POINTS, num_samples=128, eval_batch_size=20, num_timesteps=10, hidden_size=8, quiet=True)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    return out


def test_a_run_records_every_file_in_its_manifest(run_dir, capsys):
    assert sorted(json.loads((run_dir / MANIFEST).read_text())["files"]) == sorted(RUN_FILES)
    assert check_manifest(run_dir) == sorted(RUN_FILES)
    assert main(["verify", str(run_dir)]) == 0
    assert f"all {len(RUN_FILES)} files match manifest.json" in capsys.readouterr().out


def _flip(data: bytes, where: int, bit: int = 0x04) -> bytes:
    changed = bytearray(data)
    changed[where] ^= bit
    return bytes(changed)


DAMAGE = {
    "first byte flipped": lambda data: _flip(data, 0),
    "middle byte flipped": lambda data: _flip(data, len(data) // 2),
    "last byte flipped": lambda data: _flip(data, len(data) - 1),
    "truncated": lambda data: data[: len(data) * 2 // 3],
    "emptied": lambda data: b"",
}


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("name", [*RUN_FILES, MANIFEST])
def test_any_damaged_file_is_reported_in_one_line(run_dir, tmp_path, capsys, name, damage):
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    (broken / name).write_bytes(DAMAGE[damage]((broken / name).read_bytes()))
    assert main(["verify", str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{broken / name}" in err and "corrupt" in err
    with pytest.raises(Corrupt):  # what sample, plot, animate and evaluate read a run with
        load_run(broken)


@pytest.mark.parametrize(
    "command",
    [
        ["sample", "{run}", "--num", "5"],
        ["evaluate", "{run}"],
        ["plot", "reverse", "{run}", "--panels", "3"],
        ["animate", "{run}"],
    ],
)
def test_every_command_that_reads_a_run_refuses_a_damaged_one(run_dir, tmp_path, capsys, command):
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    (broken / "samples.png").write_bytes(_flip((broken / "samples.png").read_bytes(), 100))
    before = sorted(p.name for p in broken.iterdir())
    assert main([part.format(run=broken) for part in command]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "samples.png is corrupt" in err
    assert sorted(p.name for p in broken.iterdir()) == before  # nothing written


def test_a_missing_file_is_reported(run_dir, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    (broken / "frames.npy").unlink()
    assert main(["verify", str(broken)]) == 2
    assert "frames.npy is missing" in capsys.readouterr().err


def test_a_run_from_before_manifests_still_loads(run_dir, tmp_path, capsys):
    old = tmp_path / "old"
    shutil.copytree(run_dir, old)
    (old / MANIFEST).unlink()
    assert load_run(old).shape == (2,)
    assert main(["verify", str(old)]) == 0
    assert "no manifest.json" in capsys.readouterr().out
    assert main(["sample", str(old), "--num", "3", "--out", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (3, 2)


def test_verify_refuses_a_path_with_nothing_to_check(tmp_path, capsys):
    assert main(["verify", str(tmp_path / "nothing")]) == 2
    assert "nothing to verify" in capsys.readouterr().err


@pytest.mark.parametrize("value", [{}, {"files": {"a": {"size": 1, "sha256": "00"}}, "text": "é\n", "x": 1.5e-300}])
def test_a_sealed_record_round_trips_and_any_changed_byte_breaks_it(tmp_path, value):
    path = tmp_path / "r.json"
    data = seal(value)
    path.write_bytes(data)
    assert unseal(path) == value
    for i in range(len(data)):  # every single byte, flipped: never accepted
        for bit in (0x01, 0x20):
            path.write_bytes(_flip(data, i, bit))
            with pytest.raises(Corrupt):
                unseal(path)


def test_a_manifest_names_only_files_inside_its_folder(tmp_path):
    (tmp_path / "a").write_bytes(b"x")
    (tmp_path / MANIFEST).write_bytes(seal({"files": {"../a": {"size": 1, "sha256": "0"}}}))
    with pytest.raises(UsageError, match="outside the folder"):
        check_manifest(tmp_path)
    (tmp_path / MANIFEST).write_bytes(manifest(tmp_path, ["a"]))
    assert check_manifest(tmp_path) == ["a"]
