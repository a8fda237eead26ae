//! Vision transformers: the tokens of a block's output `[N, tokens, dim]` are read as `dim`
//! channels over the patches' grid (the prefix tokens left out), inferred from the model's
//! patch convolution, overridable, batch first or sequence first; checked against a direct
//! session run of the tiny ViTs (`tests/models/tiny_vit.py`, themselves checked against numpy).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, UInt32Type, UInt64Type};
use arrow_array::Array;
use fast_image_resize::Resizer;
use ndarray::{ArrayD, Axis};
use ort::session::Session;
use ort::value::TensorRef;

use crate::common::*;

const IMAGES: [(&str, u32, u32); 4] = [
    ("a.png", 10, 12),
    ("b.jpg", 8, 8),
    ("c.png", 16, 9),
    ("d.jpg", 7, 11),
];

/// The tiny ViTs: the model run, its reference with the blocks as graph outputs, its prefix
/// tokens, and whether its blocks are sequence first.
const VITS: [(&str, &str, usize, bool); 3] = [
    ("tiny_vit.onnx", "tiny_vit_outputs.onnx", 1, false),
    ("tiny_vit_reg.onnx", "tiny_vit_reg.onnx", 5, false),
    ("tiny_vit_seq.onnx", "tiny_vit_seq.onnx", 1, true),
];

/// The grid of the tiny ViTs: 8 x 8 input, patches of 2.
const GRID: usize = 4;
const DIM: usize = 8;

fn vit_config(dir: &Path, tag: &str, model_name: &str, run: &str, layers: &str) -> PathBuf {
    if !dir.join("images").exists() {
        write_images(&dir.join("images"), &IMAGES);
    }
    let text = format!(
        "name = \"{tag}\"\n[input]\nroot = \"images\"\n[model]\npath = \"{}\"\n[run]\n{run}\n\
         {layers}\n[output]\ndir = \"out-{tag}\"\n",
        model(model_name).display()
    );
    let path = dir.join(format!("{tag}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Statistics and maps only (a layer that writes positions is reduced on the host).
const LAYERS: &str = "[[layers]]\ntensor = \"block0\"\nkeep = \"all\"\npositions = \"none\"\n\
                      [[layers]]\ntensor = \"block1\"\ntop_k = 2\npositions = \"none\"\n";

/// Each image's blocks from a direct session run of `reference`, batch first, by image path.
fn direct(config: &Path, reference: &str, seq_first: bool) -> HashMap<String, [ArrayD<f32>; 2]> {
    let (plan, _) = layerwise::plan::Plan::load(config, &Default::default()).unwrap();
    let mut session = Session::builder(&runtime().environment)
        .unwrap()
        .commit_from_file(model(reference))
        .unwrap();
    let root = config.parent().unwrap().join("images");
    IMAGES
        .iter()
        .map(|(name, ..)| {
            let mut input = vec![0.0; plan.preprocess.image_len()];
            plan.preprocess
                .load_into(&root.join(name), &mut Resizer::new(), &mut input)
                .unwrap();
            let tensor = TensorRef::from_array_view(([1usize, 3, 8, 8], &input[..])).unwrap();
            let outputs = session.run(ort::inputs!["pixel_values" => tensor]).unwrap();
            let block = |n: &str| {
                let a = outputs[n].try_extract_array::<f32>().unwrap().to_owned();
                a.index_axis_move(Axis(usize::from(seq_first)), 0)
            };
            (name.to_string(), [block("block0"), block("block1")])
        })
        .collect()
}

/// Channel `c`'s map of a block `[tokens, dim]`: its values over the grid, prefix left out.
fn grid_map(block: &ArrayD<f32>, prefix: usize, c: usize) -> Vec<f32> {
    (0..GRID * GRID).map(|k| block[[prefix + k, c]]).collect()
}

#[test]
fn token_grids_are_inferred_and_equal_a_direct_session_run_in_the_host_and_in_the_graph() {
    let dir = tempfile::tempdir().unwrap();
    for (model_name, reference, prefix, seq_first) in VITS {
        for reduce in ["host", "graph"] {
            let tag = format!("{}-{reduce}", model_name.trim_end_matches(".onnx"));
            let run = format!("reduce = \"{reduce}\"");
            let config = vit_config(dir.path(), &tag, model_name, &run, LAYERS);
            let record = run_quietly(&config).unwrap();
            let want = direct(&config, reference, seq_first);
            let out = dir.path().join(format!("out-{tag}"));
            let what = format!("{model_name} reduce = {reduce}");

            let layer = serde_json::to_value(&record.provenance.layers[0]).unwrap();
            assert_eq!(layer["reduced_in"], reduce, "{what}");
            let layout = layer["layout"].clone();
            assert_eq!(
                layout,
                serde_json::json!({
                    "batch_axis": usize::from(seq_first), "channel_axis": 2,
                    "tokens": {"prefix": prefix, "grid": [GRID, GRID]}, "decided": "inferred"
                }),
                "{what}"
            );
            assert_eq!(
                record.provenance.layers[0].describe(),
                format!(
                    "8 channels over 4 x 4 patches + {prefix} prefix token{}",
                    if prefix == 1 { "" } else { "s" }
                )
            );

            let images = read_table(&out, "images");
            let paths: HashMap<u64, String> = u64s(&images, "image_id")
                .into_iter()
                .zip(strings(&images, "path").into_iter().map(Option::unwrap))
                .collect();
            let maps = read_table(&out, "maps");
            assert_eq!(
                maps.num_rows(),
                IMAGES.len() * DIM,
                "{what}: block0, keep all"
            );
            let values = lists(&maps);
            let (ids, channels) = (u64s(&maps, "image_id"), u32s(&maps, "channel"));
            for row in 0..maps.num_rows() {
                assert_eq!(
                    (u32s(&maps, "height")[row], u32s(&maps, "width")[row]),
                    (4, 4)
                );
                let block0 = &want[&paths[&ids[row]]][0];
                let c = channels[row] as usize;
                assert_close(&values[row], &grid_map(block0, prefix, c), &what);
            }

            let stats = read_table(&out, "stats");
            assert_eq!(stats.num_rows(), IMAGES.len() * 2 * DIM, "{what}");
            let layers = strings(&stats, "layer");
            let (ids, channels) = (u64s(&stats, "image_id"), u32s(&stats, "channel"));
            let means = primitives::<Float32Type>(&stats, "mean");
            let maxes = primitives::<Float32Type>(&stats, "max");
            for row in 0..stats.num_rows() {
                let block = usize::from(layers[row].as_deref() == Some("block1"));
                let map = grid_map(
                    &want[&paths[&ids[row]]][block],
                    prefix,
                    channels[row] as usize,
                );
                let mean = map.iter().map(|&v| f64::from(v)).sum::<f64>() / map.len() as f64;
                let max = map.iter().copied().fold(f32::MIN, f32::max);
                assert_close(&[means[row], maxes[row]], &[mean as f32, max], &what);
            }

            let top = read_table(&out, "top");
            assert_eq!(top.num_rows(), DIM * 2, "{what}: block1, 2 per channel");
            let heights = top
                .column_by_name("height")
                .unwrap()
                .as_primitive::<UInt32Type>();
            assert!(heights.values().iter().all(|&h| h == 4), "{what}");
            let top_ids = top
                .column_by_name("image_id")
                .unwrap()
                .as_primitive::<UInt64Type>();
            assert!(top_ids.values().iter().all(|id| paths.contains_key(id)));
        }
    }
}

/// Runs `config` with the command line; returns its exit code and standard error.
fn refused(config: &Path) -> (i32, String) {
    let out = layerwise()
        .arg("run")
        .arg(config)
        .arg("-q")
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_given_layout_is_taken_as_is_and_a_wrong_one_is_refused_before_any_image() {
    let dir = tempfile::tempdir().unwrap();
    // An explicit channel axis keeps its meaning: 8 channels, each the 17 tokens as a strip.
    let strips = "[[layers]]\ntensor = \"block0\"\nkeep = [0]\nchannel_axis = 2\n";
    let config = vit_config(dir.path(), "strips", "tiny_vit.onnx", "", strips);
    let record = run_quietly(&config).unwrap();
    assert_eq!(
        record.provenance.layers[0].describe(),
        "8 channels of 17 x 1"
    );
    let given = "[[layers]]\ntensor = \"block0\"\ntokens = { prefix = 1, grid = [4, 4] }\n";
    let config = vit_config(dir.path(), "given", "tiny_vit.onnx", "", given);
    let record = run_quietly(&config).unwrap();
    let layout = record.provenance.layers[0].layout.unwrap();
    assert_eq!(layout.decided, layerwise::reduce::layout::Decided::Given);

    let cases = [
        (
            "[[layers]]\ntensor = \"block0\"\ntokens = { prefix = 2, grid = [4, 4] }\n",
            "tiny_vit.onnx",
            "error: config: `layers[0].tokens` says 18 tokens (4 x 4 patches + 2 prefix tokens), \
             but tensor `block0` has shape [N, 17, 8]; they lie as 4 x 4 patches + 1 prefix \
             token: tokens = { prefix = 1, grid = [4, 4] }",
        ),
        (
            "[[layers]]\ntensor = \"block0\"\ntokens = { prefix = 1, grid = [4, 4] }\n\
             channel_axis = 1\n",
            "tiny_vit.onnx",
            "error: config: `layers[0].channel_axis` is 1, but `tokens` puts the channels on the \
             last axis of `[batch, tokens, dim]`, axis 2; remove `channel_axis` (or `tokens = { \
             prefix = 1, grid = [4, 4] }`)",
        ),
        (
            "[[layers]]\ntensor = \"block0\"\nbatch_axis = 0\n",
            "tiny_vit_seq.onnx",
            "error: config: `layers[0].batch_axis` is 0, but tensor `block0` has its batch on \
             axis 1: shape [17, N, 8]; remove `batch_axis`",
        ),
        (
            "[[layers]]\ntensor = \"conv1\"\ntokens = { prefix = 0, grid = [8, 8] }\n",
            "tiny_nchw.onnx",
            "error: config: `layers[0].tokens` says 64 tokens (8 x 8 patches), \
             but tensor `conv1` has shape [N, 4, 8, 8]; `tokens` applies to a rank-3 tensor [N, \
             tokens, dim]",
        ),
    ];
    for (i, (layers, model_name, message)) in cases.into_iter().enumerate() {
        let config = vit_config(dir.path(), &format!("bad{i}"), model_name, "", layers);
        let (code, stderr) = refused(&config);
        assert_eq!(code, 2, "{stderr}");
        let message = message.replacen("config:", &format!("config {}:", config.display()), 1);
        assert_eq!(stderr.lines().last(), Some(message.as_str()), "{stderr}");
        assert!(
            !dir.path().join(format!("out-bad{i}")).exists(),
            "nothing is written"
        );
    }
}

#[test]
fn layers_with_shapes_says_how_the_tokens_lie() {
    for (model_name, tensor, want) in [
        (
            "tiny_vit.onnx",
            "block0",
            "Add float32 [1, 17, 8] (8 channels over 4 x 4 patches + 1 prefix token)",
        ),
        (
            "tiny_vit_seq.onnx",
            "block1",
            "Transpose float32 [17, 1, 8] output (8 channels over 4 x 4 patches + 1 prefix token)",
        ),
        (
            "tiny_rank3.onnx",
            "tokens",
            "Transpose float32 [1, 16, 6] output",
        ),
    ] {
        let out = succeeded(
            layerwise()
                .arg("layers")
                .arg(model(model_name))
                .arg("--shapes"),
        );
        // The row of `tensor`, after its index, with runs of spaces as one.
        let row = out.lines().find_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            (words.get(1) == Some(&tensor)).then(|| words[2..].join(" "))
        });
        assert_eq!(row.as_deref(), Some(want), "{out}");
    }
}

/// The `positions` rows, by (image path, layer, position): y, x and the vector.
type PositionRows = HashMap<(String, String, u32), (Option<u32>, Option<u32>, Vec<f32>)>;

fn positions_of(out: &Path) -> PositionRows {
    let images = read_table(out, "images");
    let paths: HashMap<u64, String> = u64s(&images, "image_id")
        .into_iter()
        .zip(strings(&images, "path").into_iter().map(Option::unwrap))
        .collect();
    let table = read_table(out, "positions");
    let (ids, layers) = (u64s(&table, "image_id"), strings(&table, "layer"));
    let position = u32s(&table, "position");
    let column = |name: &str| {
        let c = table.column_by_name(name).unwrap();
        let c = c.as_primitive::<UInt32Type>();
        (0..c.len())
            .map(|i| c.is_valid(i).then(|| c.value(i)))
            .collect::<Vec<_>>()
    };
    let (y, x) = (column("y"), column("x"));
    let values = position_vectors(&table);
    (0..table.num_rows())
        .map(|r| {
            let key = (
                paths[&ids[r]].clone(),
                layers[r].clone().unwrap(),
                position[r],
            );
            (key, (y[r], x[r], values[r].clone()))
        })
        .collect()
}

fn rounded(values: &[f32]) -> Vec<f32> {
    values
        .iter()
        .map(|&v| half::f16::from_f32(v).to_f32())
        .collect()
}

#[test]
fn positions_are_the_vectors_at_the_tokens_a_direct_session_run_gives() {
    let dir = tempfile::tempdir().unwrap();
    for ((model_name, reference, prefix, seq_first), reduce) in
        VITS.into_iter().flat_map(|v| [(v, "host"), (v, "graph")])
    {
        let tag = format!(
            "positions-{}-{reduce}",
            model_name.trim_end_matches(".onnx")
        );
        // block0: the default for tokens (the prefix, float16), gathered in the graph with
        // `reduce = "graph"`; block1: all of them (from the whole tensor, on the host).
        let layers = "[[layers]]\ntensor = \"block0\"\n\
                      [[layers]]\ntensor = \"block1\"\npositions = \"all\"\n";
        let run = format!("reduce = \"{reduce}\"");
        let config = vit_config(dir.path(), &tag, model_name, &run, layers);
        let record = run_quietly(&config).unwrap();
        let reduced_in = |l: usize| serde_json::to_value(record.provenance.layers[l].reduced_in);
        let reduced_in = (reduced_in(0).unwrap(), reduced_in(1).unwrap());
        assert_eq!(reduced_in, (reduce.into(), "host".into()));
        let want = direct(&config, reference, seq_first);
        let got = positions_of(&dir.path().join(format!("out-{tag}")));
        let tokens = prefix + GRID * GRID;
        assert_eq!(got.len(), IMAGES.len() * (prefix + tokens), "{model_name}");
        for (name, ..) in IMAGES {
            for (layer, block, count) in [("block0", 0, prefix), ("block1", 1, tokens)] {
                for t in 0..count {
                    let (y, x, values) = &got[&(name.to_owned(), layer.to_owned(), t as u32)];
                    let yx = (t >= prefix).then(|| ((t - prefix) / GRID, (t - prefix) % GRID));
                    assert_eq!((*y, *x), (yx.map(|p| p.0 as u32), yx.map(|p| p.1 as u32)));
                    let vector: Vec<f32> = (0..DIM).map(|c| want[name][block][[t, c]]).collect();
                    assert_eq!(values, &rounded(&vector), "{model_name} {name} {layer} {t}");
                }
            }
        }
    }
}

#[test]
fn sampled_positions_are_the_same_across_reruns_resumes_and_shards() {
    let dir = tempfile::tempdir().unwrap();
    let layers = "[[layers]]\ntensor = \"block1\"\npositions = 5\npositions_dtype = \"float32\"\n";
    let config = vit_config(
        dir.path(),
        "sampled",
        "tiny_vit.onnx",
        "part_size = 1",
        layers,
    );
    let whole = dir.path().join("whole");
    single_run(&config, &whole);
    let want = direct(&config, "tiny_vit_outputs.onnx", false);
    let got = positions_of(&whole);
    assert_eq!(got.len(), IMAGES.len() * 5);
    for ((name, _, position), (y, x, values)) in &got {
        let t = *position as usize;
        assert!(t >= 1, "grid positions only: {t}");
        assert_eq!(
            (*y, *x),
            (Some((t as u32 - 1) / 4), Some((t as u32 - 1) % 4))
        );
        let vector: Vec<f32> = (0..DIM).map(|c| want[name][1][[t, c]]).collect();
        assert_eq!(values, &vector);
    }
    let mut drawn: Vec<Vec<u32>> = IMAGES
        .iter()
        .map(|(name, ..)| {
            let mut p: Vec<u32> = got.keys().filter(|k| k.0 == *name).map(|k| k.2).collect();
            p.sort();
            p
        })
        .collect();
    drawn.dedup();
    assert!(
        drawn.len() > 1,
        "each image draws its own positions: {drawn:?}"
    );

    // Three shards into one folder, and the same rerun into another: equal to the whole.
    let sharded = dir.path().join("sharded");
    for shard in ["0/3", "1/3", "2/3"] {
        succeeded(
            layerwise()
                .args(["run", "-q", "--shard", shard, "--out"])
                .arg(&sharded)
                .arg(&config),
        );
    }
    assert_same_tables(&whole, &sharded);
    let again = dir.path().join("again");
    single_run(&config, &again);
    assert_same_tables(&whole, &again);
}

#[test]
fn sampled_positions_gathered_in_the_graph_are_the_hosts() {
    let dir = tempfile::tempdir().unwrap();
    for (model, tensor) in [
        ("tiny_vit.onnx", "block1"),
        ("tiny_vit_seq.onnx", "block1"),
        ("tiny_vit_reg.onnx", "block0"),
        ("tiny_nchw.onnx", "conv1"),
    ] {
        let layers = format!(
            "[[layers]]\ntensor = \"{tensor}\"\npositions = 3\npositions_dtype = \"float32\"\n"
        );
        let run = |reduce: &str| {
            let tag = format!("{}-{reduce}", model.trim_end_matches(".onnx"));
            let setting = format!("reduce = \"{reduce}\"\nbatch_size = 3");
            let config = vit_config(dir.path(), &tag, model, &setting, &layers);
            run_quietly(&config).unwrap();
            let out = dir.path().join(format!("out-{tag}"));
            let run: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap())
                    .unwrap();
            (positions_of(&out), run["layers"][0]["reduced_in"].clone())
        };
        let (host, graph) = (run("host"), run("graph"));
        assert_eq!(graph.1, "graph", "{model}: gathered in the graph");
        assert_eq!(host.0.len(), IMAGES.len() * 3, "{model}");
        assert_eq!(
            graph.0, host.0,
            "{model}: the same positions and vectors, exactly"
        );
    }
}

#[test]
fn a_cnn_layers_positions_are_its_maps_read_across_channels() {
    let dir = tempfile::tempdir().unwrap();
    let layers = "[[layers]]\ntensor = \"conv1\"\nkeep = \"all\"\npositions = \"all\"\n\
                  positions_dtype = \"float32\"\n";
    let config = vit_config(dir.path(), "cnn", "tiny_nchw.onnx", "", layers);
    run_quietly(&config).unwrap();
    let out = dir.path().join("out-cnn");
    let maps = read_table(&out, "maps");
    let (ids, channels, values) = (
        u64s(&maps, "image_id"),
        u32s(&maps, "channel"),
        lists(&maps),
    );
    let map: HashMap<(u64, u32), &Vec<f32>> = (0..maps.num_rows())
        .map(|r| ((ids[r], channels[r]), &values[r]))
        .collect();
    let table = read_table(&out, "positions");
    assert_eq!(
        table.num_rows(),
        IMAGES.len() * 64,
        "8 x 8 pixels per image"
    );
    let (ids, positions) = (u64s(&table, "image_id"), u32s(&table, "position"));
    let (ys, xs) = (u32s(&table, "y"), u32s(&table, "x"));
    for (r, vector) in position_vectors(&table).iter().enumerate() {
        let p = positions[r];
        assert_eq!((ys[r], xs[r]), (p / 8, p % 8));
        let across: Vec<f32> = (0..4).map(|c| map[&(ids[r], c)][p as usize]).collect();
        assert_eq!(vector, &across);
    }
}

#[test]
fn positions_that_a_tensor_cannot_give_are_refused_before_any_image() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[[layers]]\ntensor = \"conv1\"\npositions = \"prefix\"\n",
            "tiny_nchw.onnx",
            "error: config: `layers[0].positions` is \"prefix\", but `conv1` has no prefix tokens \
             (not a token grid); write \"all\" or a number of positions per image",
        ),
        (
            "[[layers]]\ntensor = \"block0\"\npositions = 17\n",
            "tiny_vit.onnx",
            "error: config: `layers[0].positions` asks for 17 positions per image, but `block0` \
             has 16 (4 x 4); write \"all\", or at most 16",
        ),
        (
            "[[layers]]\ntensor = \"logits\"\npositions = \"all\"\n",
            "tiny_nchw_outputs.onnx",
            "error: config: `layers[0].positions` applies to maps and tokens, but `logits` is one \
             vector per image (rank 2), which the `vectors` table holds; remove `positions`",
        ),
        (
            "[[layers]]\ntensor = \"block0\"\n[[layers]]\ntensor = \"block1\"\n\
             positions_dtype = \"float32\"\n",
            "tiny_vit.onnx",
            "error: config: `layers` write positions of 8 Float16 values (`block0`) and of 8 \
             Float32 values (`block1`), but the `positions` table holds vectors of one length and \
             type; give the layers of another width their own run, or set `positions = \"none\"` \
             on them",
        ),
    ];
    for (i, (layers, model_name, message)) in cases.into_iter().enumerate() {
        let config = vit_config(dir.path(), &format!("bad{i}"), model_name, "", layers);
        let (code, stderr) = refused(&config);
        assert_eq!(code, 2, "{stderr}");
        let message = message.replacen("config:", &format!("config {}:", config.display()), 1);
        assert_eq!(stderr.lines().last(), Some(message.as_str()), "{stderr}");
    }
}

#[test]
fn the_documented_reader_yields_every_position_of_the_layer_once_per_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let layers = "[[layers]]\ntensor = \"block0\"\npositions = \"all\"\n\
                  [[layers]]\ntensor = \"block1\"\npositions = 3\n";
    let config = vit_config(
        dir.path(),
        "reader",
        "tiny_vit.onnx",
        "part_size = 2",
        layers,
    );
    run_quietly(&config).unwrap();
    let out = dir.path().join("out-reader");
    // The docs' first Python block, as written, then one epoch of block0 in batches of 7.
    let script = r#"
import json, re, sys
docs, out = sys.argv[1:]
block = re.findall(r"^```python\n(.*?)^```", open(docs).read(), flags=re.S | re.M)[0]
exec(block)
batches = list(position_batches(out, "block0", batch_size=7, seed=3))
again = list(position_batches(out, "block0", batch_size=7, seed=3))
print(json.dumps({
    "shapes": [list(b.shape) for b in batches],
    "dtypes": sorted({str(b.dtype) for b in batches}),
    "rows": [r.tolist() for b in batches for r in b],
    "same_order": all((a == b).all() for a, b in zip(batches, again)),
}))
"#;
    let docs = root().join("docs/positions.md");
    let output = std::process::Command::new(python())
        .args(["-c", script])
        .arg(&docs)
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let rows = IMAGES.len() * (1 + GRID * GRID);
    let shapes: Vec<Vec<usize>> = serde_json::from_value(got["shapes"].clone()).unwrap();
    let mut want_shapes = vec![vec![7, DIM]; rows / 7];
    want_shapes.push(vec![rows % 7, DIM]);
    assert_eq!(shapes, want_shapes);
    assert_eq!(got["dtypes"], serde_json::json!(["float32"]));
    assert_eq!(got["same_order"], true, "the same seed, the same epoch");
    let key = |v: &Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    let mut yielded: Vec<Vec<u32>> = serde_json::from_value::<Vec<Vec<f32>>>(got["rows"].clone())
        .unwrap()
        .iter()
        .map(key)
        .collect();
    let table = read_table(&out, "positions");
    let layers = strings(&table, "layer");
    let mut written: Vec<Vec<u32>> = position_vectors(&table)
        .iter()
        .zip(&layers)
        .filter(|(_, l)| l.as_deref() == Some("block0"))
        .map(|(v, _)| key(v))
        .collect();
    assert_eq!(written.len(), rows);
    yielded.sort();
    written.sort();
    assert_eq!(yielded, written, "every row once");
}

#[test]
fn plots_and_the_atlas_draw_each_channels_grid_not_a_strip() {
    use crate::report::{browser, page, report};
    use layerwise::view::render::{magnification, GAP, TITLE_BAND};
    let dir = tempfile::tempdir().unwrap();
    let config = vit_config(dir.path(), "plot", "tiny_vit.onnx", "", LAYERS);
    run_quietly(&config).unwrap();
    let out = dir.path().join("out-plot");
    let png = dir.path().join("top.png");
    succeeded(
        layerwise()
            .args(["plot", "top", "--run"])
            .arg(&out)
            .args([
                "--layer",
                "block1",
                "--channel",
                "3",
                "--k",
                "2",
                "--cols",
                "2",
                "--png",
            ])
            .arg(&png),
    );
    // Two cells of the 4 x 4 grid, side by side, each square: not 17 x 1 strips.
    let side = GRID as u32 * magnification(GRID, GRID);
    let img = image::open(&png).unwrap();
    assert_eq!(
        (img.width(), img.height()),
        (GAP + 2 * (side + GAP), GAP + TITLE_BAND + side + GAP)
    );
    // The atlas: each example of block1's channel 3 is the 4 x 4 grid over its image.
    report(&out, &[]);
    let atlas = out.join("report");
    let layer = page(&atlas, "layer-1.html");
    assert!(
        layer.contains("8 channels over 4 x 4 patches + 1 prefix token"),
        "{layer}"
    );
    for rank in 0..2 {
        let example = image::open(atlas.join(format!("layer-1/c3-{rank}.jpg"))).unwrap();
        assert_eq!((example.width(), example.height()), (side, side));
    }
    let shots = root().join("target/report-shots-vit");
    let pages = ["index.html", "layer-1.html", "layer-1/channel-3.html"];
    let checked = browser(&atlas, &shots, &pages);
    assert_eq!(checked[1]["sorted_rows"], DIM, "the layer table sorts");
    assert_eq!(checked[2]["images"], 2, "both examples load");
}

#[test]
fn shuffled_positions_are_the_same_rows_in_one_seeded_order_whatever_the_batches() {
    let dir = tempfile::tempdir().unwrap();
    let layers = "[[layers]]\ntensor = \"block1\"\npositions = \"all\"\n";
    let run = |tag: &str, batch: usize, shuffle: bool| {
        let config = vit_config(
            dir.path(),
            tag,
            "tiny_vit.onnx",
            &format!("batch_size = {batch}"),
            layers,
        );
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, format!("{text}shuffle = {shuffle}\n")).unwrap();
        run_quietly(&config).unwrap();
        read_table(&dir.path().join(format!("out-{tag}")), "positions")
    };
    let (plain, shuffled) = (run("plain", 4, false), run("shuffled", 4, true));
    assert_eq!(
        shuffled,
        run("again", 1, true),
        "the same order, batches of 1 or 4"
    );
    let rows = |t: &arrow_array::RecordBatch| {
        let (ids, at) = (u64s(t, "image_id"), u32s(t, "position"));
        let values = position_vectors(t);
        (0..t.num_rows())
            .map(|r| {
                (
                    ids[r],
                    at[r],
                    values[r].iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                )
            })
            .collect::<Vec<_>>()
    };
    let (plain, shuffled) = (rows(&plain), rows(&shuffled));
    assert_ne!(plain, shuffled, "shuffled");
    let mut sorted = shuffled.clone();
    sorted.sort();
    assert_eq!(sorted, plain, "exactly the rows, each once");
    let first_images: Vec<u64> = shuffled[..8].iter().map(|r| r.0).collect();
    assert!(
        first_images.windows(2).any(|w| w[0] != w[1]),
        "images mixed: {first_images:?}"
    );
}
