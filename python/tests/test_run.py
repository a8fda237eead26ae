"""`layerwise.run` and `layerwise.open` against the command and pyarrow's reading of the files."""

import _thread
import glob
import io
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from PIL import Image

import layerwise as lw

from conftest import command, demo_config, toml_text

TABLES = ["images", "stats", "maps", "vectors", "top", "positions"]


def files(out: Path, table: str):
    """A table as pyarrow reads its part files."""
    parts = sorted(glob.glob(str(out / table / "*.parquet")))
    return pq.read_table(parts) if parts else None


@pytest.fixture(scope="module")
def by_command(demo, tmp_path_factory):
    """The demo study run by the command, from a TOML file."""
    folder = tmp_path_factory.mktemp("command")
    config = folder / "demo.toml"
    config.write_text(toml_text(demo_config(demo, folder / "out")))
    done = command("run", str(config), "--quiet")
    assert done.returncode == 0, done.stderr
    return folder / "out"


def test_run_from_a_file_and_from_a_dict_writes_the_commands_tables(demo, by_command, tmp_path):
    from_file = tmp_path / "file.toml"
    from_file.write_text(toml_text(demo_config(demo, tmp_path / "ignored")))
    runs = [
        lw.run(from_file, out=tmp_path / "from-file", progress=False),
        lw.run(demo_config(demo, tmp_path / "from-dict"), progress=False),
    ]
    for run in runs:
        assert run.complete and run.name == "demo-classic-study"
        for table in TABLES:
            want, got = files(by_command, table), files(Path(run.location), table)
            if want is None:
                assert got is None
                continue
            assert got.equals(want), table
            read = getattr(run, table)()
            assert read.equals(want), table


def test_open_reads_the_tables_as_pyarrow_does(by_command):
    run = lw.open(by_command)
    stats = files(by_command, "stats")
    assert run.stats().equals(stats)
    one = run.stats(layer="block5_conv3")
    assert one.num_rows == 50 * 512
    assert one.equals(stats.filter(pc.equal(stats["layer"], "block5_conv3")))
    assert run.images().num_rows == 51
    for table, layer in [("maps", "block1_conv1"), ("top", "block5_conv3"), ("positions", "block5_conv3"), ("vectors", "predictions")]:
        whole = files(by_command, table)
        want = whole.filter(pc.equal(whole["layer"], layer))
        got = getattr(run, table)(layer=layer)
        assert got.num_rows > 0 and got.equals(want), table
    with pytest.raises(lw.ConfigError, match="has no layer `nope`; its layers are block1_conv1, block5_conv3"):
        run.stats(layer="nope")
    with pytest.raises(lw.ConfigError, match="no table `bogus`"):
        run._read("bogus", None)


def test_map_is_the_maps_tables_values_reshaped(by_command):
    run = lw.open(by_command)
    maps = files(by_command, "maps").to_pylist()
    rows = [r for r in maps if r["image_id"] == 3 and r["layer"] == "block1_conv1"]
    want = np.array([r["values"] for r in rows], dtype=np.float32).reshape(len(rows), 224, 224)
    np.testing.assert_array_equal(run.map("block1_conv1", 3), want)
    path = run.images().to_pylist()[3]["path"]
    np.testing.assert_array_equal(run.map("block1_conv1", path), want)
    two = run.map("block1_conv1", 3, channels=[27, 11])
    np.testing.assert_array_equal(two, want[[3, 1]])
    with pytest.raises(lw.ConfigError, match="channel 5 of `block1_conv1` is not stored"):
        run.map("block1_conv1", 3, channels=[5])


def test_plots_are_the_commands_pngs(by_command, tmp_path):
    run = lw.open(by_command)
    figures = [
        (run.plot_top("block5_conv3", 7, k=4), ["top", "--channel", "7", "--k", "4"]),
        (run.plot_images("block1_conv1", 11), ["images", "--channel", "11"]),
    ]
    for png, args in figures:
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and png._repr_png_() == bytes(png)
        drawn = tmp_path / "cli.png"
        layer = "block5_conv3" if args[0] == "top" else "block1_conv1"
        done = command("plot", args[0], "--run", str(by_command), "--layer", layer, *args[1:], "--png", str(drawn))
        assert done.returncode == 0, done.stderr
        want = np.asarray(Image.open(drawn))
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), want)
    grid = run.plot_channels("block1_conv1", 0)
    assert Image.open(io.BytesIO(grid)).size[0] > 0
    index = run.report(tmp_path / "atlas")
    assert index.endswith("index.html") and Path(index).is_file()


def test_a_partial_run_opens(demo, tmp_path, capsys):
    config = demo_config(demo, tmp_path / "half")
    half = lw.run(config, shard="0/2", progress=True)
    # Not a terminal: tqdm's bar (the tests' environment has tqdm), counting the shard's images.
    assert "32/32" in capsys.readouterr().err
    assert not half.complete and half.parts == (2, 4)
    assert half.images().num_rows == 32
    assert "2 of 4 parts" in repr(half)


def test_keyboard_interrupt_leaves_a_resumable_run(demo, tmp_path):
    out = tmp_path / "interrupted"
    config = demo_config(demo, out, batch_size=2, part_size=4)

    def interrupt_after_the_first_part():
        deadline = time.monotonic() + 60
        while not list(out.glob("_parts/*.json")) and time.monotonic() < deadline:
            time.sleep(0.005)
        _thread.interrupt_main()

    threading.Thread(target=interrupt_after_the_first_part, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        lw.run(config, progress=False)
    stopped = lw.open(out)
    assert not stopped.complete and 1 <= stopped.parts[0] < stopped.parts[1] == 13
    finished = lw.run(config, progress=False)
    assert finished.complete and finished.images().num_rows == 51
    whole = lw.run(demo_config(demo, tmp_path / "whole", batch_size=2, part_size=4), progress=False)
    for table in ("images", "stats", "maps"):
        assert files(out, table).equals(files(Path(whole.location), table)), table


def test_a_config_mistake_is_a_config_error_with_the_commands_message(demo, tmp_path):
    config = demo_config(demo, tmp_path / "x")
    config["run"]["batch_sise"] = 3
    with pytest.raises(lw.ConfigError, match="batch_sise") as raised:
        lw.run(config, progress=False)
    path = tmp_path / "c.toml"
    path.write_text(toml_text(config))
    done = command("run", str(path))
    assert done.returncode == 2
    # The same words after the part that shows the TOML line (a dict's is its TOML's).
    assert "`run.batch_sise`" in str(raised.value)
    said = str(raised.value).split("unknown field", 1)[1]
    assert said in done.stderr
