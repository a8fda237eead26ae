//! The JSON Schema of the pipeline config, `schemas/config.schema.json`: generated from the
//! config types (`layerwise schema`), checked in, and shown to say what layerwise says. An
//! independent validator (Python's `jsonschema`) takes every shipped config and refuses the
//! configs that layerwise refuses, and every default it states is the one the parser fills in.

use crate::common::*;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use layerwise::config::{config_schema, Config};
use serde_json::Value;

/// The checked-in schema, relative to the repository root.
const SCHEMA: &str = "schemas/config.schema.json";

/// The command that brings the checked-in schema up to date.
const REFRESH: &str = "cargo run -- schema > schemas/config.schema.json";

/// The `#:schema` directive that opens every `pipelines/*.toml` (taplo resolves it against the
/// file's folder).
const DIRECTIVE: &str = "#:schema ../schemas/config.schema.json";

/// Reads a JSON list of TOML texts on stdin and prints, for each, null when the schema named
/// by argv[1] takes it, or the most relevant error as "JSON path: message".
const VALIDATE_PY: &str = r#"
import json, sys, tomllib
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

with open(sys.argv[1], encoding="utf-8") as f:
    schema = json.load(f)
Draft202012Validator.check_schema(schema)
validator = Draft202012Validator(schema)
verdicts = []
for text in json.load(sys.stdin):
    error = best_match(validator.iter_errors(tomllib.loads(text)))
    verdicts.append(None if error is None else f"{error.json_path}: {error.message}")
print(json.dumps(verdicts))
"#;

/// What Python's `jsonschema` says of each TOML text against the checked-in schema: `None`
/// when it is valid, else the error.
fn schema_verdicts(texts: &[String]) -> Vec<Option<String>> {
    let mut child = std::process::Command::new(python())
        .arg("-c")
        .arg(VALIDATE_PY)
        .arg(root().join(SCHEMA))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    serde_json::to_writer(child.stdin.take().unwrap(), texts).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the validator failed: {}", text(&out));
    let verdicts: Vec<Option<String>> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(verdicts.len(), texts.len());
    verdicts
}

#[test]
fn the_checked_in_schema_is_what_layerwise_schema_prints() {
    let out = layerwise().arg("schema").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let checked_in = std::fs::read(root().join(SCHEMA)).unwrap_or_default();
    assert!(
        out.stdout == checked_in,
        "{SCHEMA} is not what `layerwise schema` prints (the config types or their doc comments \
         changed): refresh it with `{REFRESH}` and review the diff"
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, config_schema());
    assert_eq!(printed["title"], "layerwise pipeline config");
}

/// The `pipelines/*.toml` files, sorted, with their text.
fn pipelines() -> Vec<(PathBuf, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("pipelines"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

/// The fenced ```toml blocks of a Markdown file of the repository (README.md, docs/) that are
/// whole configs (they have every required top-level key); fragments are left out.
fn markdown_configs(file: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(root().join(file)).unwrap();
    let mut blocks = Vec::new();
    let mut rest = readme.as_str();
    while let Some(start) = rest.find("```toml\n") {
        let body = &rest[start + "```toml\n".len()..];
        let end = body
            .find("\n```")
            .unwrap_or_else(|| panic!("an unclosed ```toml block in {file}"));
        blocks.push(body[..end + 1].to_owned());
        rest = &body[end..];
    }
    blocks
        .into_iter()
        .filter(|block| {
            toml::from_str::<toml::Table>(block).is_ok_and(|table| {
                ["name", "input", "model", "layers"]
                    .iter()
                    .all(|key| table.contains_key(*key))
            })
        })
        .collect()
}

#[test]
fn every_shipped_config_is_valid_for_both_layerwise_and_the_schema() {
    let pipelines = pipelines();
    assert!(pipelines.len() >= 3, "pipelines/: {}", pipelines.len());
    let readme = markdown_configs("docs/config.md");
    assert!(
        !readme.is_empty(),
        "docs/config.md has no complete config in a ```toml block"
    );
    // The export guide's recipes: one config per recipe.
    let recipes = markdown_configs("docs/models.md");
    assert_eq!(recipes.len(), 11, "docs/models.md configs");
    for (path, text) in &pipelines {
        assert!(
            text.starts_with(&format!("{DIRECTIVE}\n")),
            "{} does not open with `{DIRECTIVE}`",
            path.display()
        );
    }
    let directed = root()
        .join("pipelines")
        .join(DIRECTIVE.strip_prefix("#:schema ").unwrap());
    assert!(directed.is_file(), "{} is missing", directed.display());
    let named: Vec<(String, String)> = pipelines
        .into_iter()
        .map(|(p, text)| (p.display().to_string(), text))
        .chain(
            readme
                .into_iter()
                .enumerate()
                .map(|(i, text)| (format!("docs/config.md config block {i}"), text)),
        )
        .chain(
            recipes
                .into_iter()
                .enumerate()
                .map(|(i, text)| (format!("docs/models.md config block {i}"), text)),
        )
        .collect();
    let texts: Vec<String> = named.iter().map(|(_, t)| t.clone()).collect();
    for ((name, text), verdict) in named.iter().zip(schema_verdicts(&texts)) {
        Config::from_toml(text).unwrap_or_else(|e| panic!("layerwise refuses {name}: {e}"));
        assert_eq!(verdict, None, "the schema refuses {name}");
    }
}

/// A folder with an empty `images/` and a list file, for configs that must pass or fail
/// validation (which looks at the folders and the model, not at any image).
fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("images")).unwrap();
    std::fs::write(dir.path().join("list.txt"), "a.png\n").unwrap();
    dir
}

/// A config that layerwise takes, over `tiny_nchw.onnx`; each case below changes one thing.
fn base_config() -> String {
    format!(
        r#"name = "schema-cases"
[input]
root = "images"
[model]
path = "{}"
[preprocess]
resize = "stretch"
[run]
batch_size = 4
[[layers]]
name = "c1"
tensor = "conv1"
keep = [0, 1]
channel_axis = 1
pool = 2
[output]
dir = "out"
"#,
        model("tiny_nchw.onnx").display()
    )
}

/// Whether layerwise's validation (the config, then the plan against the model and folders,
/// as `run` and `check` do before anything else) takes this config; the error if not.
fn plan_verdict(dir: &Path, text: &str) -> Result<(), String> {
    let path = write_config(dir, text);
    layerwise::Plan::load(&path, &layerwise::Overrides::default())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn the_schema_refuses_what_layerwise_refuses() {
    let dir = workdir();
    let base = base_config();
    let model_table = format!(
        "[model]\npath = \"{}\"\n",
        model("tiny_nchw.onnx").display()
    );
    // (what the errors of both sides name, the line changed, what it becomes)
    let cases: Vec<(&str, &str, String)> = vec![
        ("batch_sise", "batch_size = 4", "batch_sise = 4".into()),
        ("batch_size", "batch_size = 4", r#"batch_size = "4""#.into()),
        ("batch_size", "batch_size = 4", "batch_size = 0".into()),
        ("part_size", "batch_size = 4", "part_size = 0".into()),
        ("queue_depth", "batch_size = 4", "queue_depth = 0".into()),
        (
            "max_error_fraction",
            "batch_size = 4",
            "max_error_fraction = 1.5".into(),
        ),
        ("provider", "batch_size = 4", r#"provider = "rocm""#.into()),
        ("reduce", "batch_size = 4", r#"reduce = "device""#.into()),
        ("threads", "batch_size = 4", "threads = -1".into()),
        ("pool", "pool = 2", "pool = 3".into()),
        ("keep", "keep = [0, 1]", r#"keep = "6..""#.into()),
        ("keep", "keep = [0, 1]", r#"keep = "all ""#.into()),
        ("keep", "keep = [0, 1]", "keep = [1, 1]".into()),
        ("keep", "keep = [0, 1]", "keep = [-1]".into()),
        (
            "channel_axis",
            "channel_axis = 1",
            "channel_axis = 0".into(),
        ),
        ("top_by", "channel_axis = 1", r#"top_by = "median""#.into()),
        ("layers[0].name", r#"name = "c1""#, r#"name = """#.into()),
        ("tensor", "tensor = \"conv1\"\n", String::new()),
        (
            "resize",
            r#"resize = "stretch""#,
            r#"resize = "squash""#.into(),
        ),
        ("size", r#"resize = "stretch""#, "size = [0, 8]".into()),
        ("mean", r#"resize = "stretch""#, "mean = [0.5, 0.5]".into()),
        (
            "extensions",
            r#"root = "images""#,
            r#"root = "images"
extensions = []"#
                .into(),
        ),
        (
            "max_pixels",
            r#"root = "images""#,
            r#"root = "images"
max_pixels = "many""#
                .into(),
        ),
        (
            "input",
            r#"root = "images""#,
            "root = \"images\"\nwebdataset = \"s/*.tar\"".into(),
        ),
        ("webdataset", r#"root = "images""#, "webdataset = []".into()),
        (
            "label_field",
            r#"root = "images""#,
            "webdataset = \"s/{0..3}.tar\"\nlabel_field = \"\"".into(),
        ),
        ("name", r#"name = "schema-cases""#, r#"name = "  ""#.into()),
        ("model", &model_table, String::new()),
        ("layer", "[[layers]]", "[[layer]]".into()),
        (
            "compression",
            r#"dir = "out""#,
            r#"dir = "out"
compression = "lz4""#
                .into(),
        ),
    ];
    assert_eq!(plan_verdict(dir.path(), &base), Ok(()), "the base config");
    let texts: Vec<String> = std::iter::once(base.clone())
        .chain(cases.iter().map(|(_, from, to)| {
            assert!(base.contains(from), "{from:?} is not in the base config");
            base.replacen(from, to, 1)
        }))
        .collect();
    let verdicts = schema_verdicts(&texts);
    assert_eq!(verdicts[0], None, "the schema refuses the base config");
    for ((key, _, to), (config, verdict)) in cases.iter().zip(texts.iter().zip(&verdicts).skip(1)) {
        let case = if to.is_empty() {
            format!("without {key}")
        } else {
            format!("{to:?}")
        };
        let path = write_config(dir.path(), config);
        let out = layerwise().arg("check").arg(&path).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{case}: layerwise check: {}",
            text(&out)
        );
        assert!(
            text(&out).contains(key),
            "{case}: layerwise does not name `{key}`: {}",
            text(&out)
        );
        let verdict = verdict
            .as_deref()
            .unwrap_or_else(|| panic!("{case}: layerwise refuses it, the schema takes it"));
        assert!(
            verdict.contains(key),
            "{case}: the schema's error does not name `{key}`: {verdict}"
        );
    }
}

#[test]
fn the_schema_takes_what_layerwise_takes() {
    let dir = workdir();
    let base = base_config();
    let variants: Vec<(&str, &str)> = vec![
        ("keep = [0, 1]", r#"keep = "all""#),
        ("keep = [0, 1]", "keep = []\ntop_k = 2"),
        ("keep = [0, 1]", r#"keep = "0..3""#),
        ("keep = [0, 1]", r#"keep = " 1 .. +3 ""#),
        ("pool = 2", "pool = 1"),
        ("pool = 2", "pool = 8"),
        ("batch_size = 4", "batch_size = 1"),
        ("batch_size = 4", "max_error_fraction = 0.0"),
        ("batch_size = 4", "decode_threads = 0"),
        ("channel_axis = 1", "channel_axis = 3"),
        (
            r#"root = "images""#,
            "root = \"images\"\nextensions = [\".PNG\"]",
        ),
        (r#"name = "schema-cases""#, r#"name = " a name ""#),
    ];
    let texts: Vec<String> = variants
        .iter()
        .map(|(from, to)| {
            assert!(base.contains(from), "{from:?} is not in the base config");
            base.replacen(from, to, 1)
        })
        .collect();
    for (((_, to), text), verdict) in variants.iter().zip(&texts).zip(schema_verdicts(&texts)) {
        assert_eq!(plan_verdict(dir.path(), text), Ok(()), "layerwise, {to:?}");
        assert_eq!(verdict, None, "the schema, {to:?}");
    }
}

#[test]
fn what_the_schema_cannot_say_is_left_to_layerwise() {
    // A schema cannot compare two numbers in a string, nor rule out one value of a float
    // without contortions: these pass the schema, and layerwise refuses them (exit 2). The
    // channel count of a layer, which `keep` must stay within, needs the model.
    let dir = workdir();
    let base = base_config();
    let gaps = [
        ("keep = [0, 1]", r#"keep = "3..3""#, "keep"),
        (r#"resize = "stretch""#, "scale = 0.0", "scale"),
        (r#"resize = "stretch""#, "std = [1.0, 0.0, 1.0]", "std"),
    ];
    let texts: Vec<String> = gaps
        .iter()
        .map(|(from, to, _)| base.replacen(from, to, 1))
        .collect();
    for (((_, to, key), text), verdict) in gaps.iter().zip(&texts).zip(schema_verdicts(&texts)) {
        let refused = plan_verdict(dir.path(), text).expect_err(to);
        assert!(refused.contains(key), "{to:?}: {refused}");
        assert_eq!(
            verdict, None,
            "{to:?}: the schema now says it; move it to the cases refused by both"
        );
    }
}

/// The every-key config with its folder input swapped for a WebDataset and a Parquet one
/// (the keys that only a shard input takes; `root`, `webdataset` and `parquet` exclude each
/// other).
fn shard_key_configs() -> [String; 2] {
    let folder = "root = \"images\"\nlist = \"list.txt\"\n";
    let every = every_key_config();
    assert!(every.contains(folder));
    [
        "webdataset = [\"shards/{00000..00003}.tar\", \"more/*.tar\"]\nimage_field = [\"png\", \"jpg\"]\nlabel_field = \"json:label\"\n",
        "parquet = \"data/train-*.parquet\"\nimage_field = \"jpg\"\nlabel_field = \"caption\"\nkey_field = \"key\"\n",
    ]
    .map(|input| every.replace(folder, input))
}

/// Every key of the config, each set to a value other than its default, over the NHWC model.
fn every_key_config() -> String {
    format!(
        r#"name = "every-key"

[input]
root = "images"
list = "list.txt"
extensions = ["png", ".JPG"]
label = "none"
max_pixels = 1000000

[model]
path = "{}"
input = "input"

[preprocess]
size = [8, 8]
resize = "shorter-side-crop"
layout = "NHWC"
channel_order = "BGR"
scale = 0.5
mean = [0.25, 0.5, 0.75]
std = [0.5, 0.25, 2.0]

[run]
batch_size = 3
threads = 2
part_size = 7
onnxruntime = "lib/libonnxruntime.so"
provider = "cuda"
device = 1
decode_threads = 1
inference_threads = 1
queue_depth = 4
max_error_fraction = 0.25
reduce = "graph"

[[layers]]
name = "c1"
tensor = "conv1"
keep = "0..2"
channel_axis = 2
tokens = {{ prefix = 1, grid = [2, 2] }}
batch_axis = 1
positions = 4
positions_dtype = "float32"
top_k = 3
top_by = "mean"
pool = 4

[output]
dir = "out"
compression = "snappy"
positions_compression = "zstd"
map_dtype = "float16"
shuffle = true
"#,
        model("tiny_nhwc.onnx").display()
    )
}

/// Resolves a `$ref` to the checked-in form `#/$defs/Name` against the root schema.
fn resolve<'a>(schema: &'a Value, node: &'a Value) -> &'a Value {
    match node["$ref"].as_str() {
        Some(reference) => {
            let name = reference
                .strip_prefix("#/$defs/")
                .unwrap_or_else(|| panic!("unexpected $ref {reference}"));
            &schema["$defs"][name]
        }
        None => node,
    }
}

/// A key the schema describes, with the value a config has there.
struct Key<'a> {
    /// The dotted path, e.g. `run.batch_size` (`layers[0].pool` for array items).
    path: String,
    /// The property's schema, `$ref` resolved.
    schema: &'a Value,
    /// The `default` the schema states.
    default: Option<&'a Value>,
    /// Whether the key is required.
    required: bool,
    /// The config's value there (null when absent).
    value: Value,
}

/// Every property of every object the schema describes under `node`, with `value`'s value
/// at each (array items are followed into the first element).
fn keys<'a>(schema: &'a Value, node: &'a Value, value: &Value, path: &str, out: &mut Vec<Key<'a>>) {
    let node = resolve(schema, node);
    if let Some(items) = node.get("items") {
        if let Some(first) = value.as_array().and_then(|a| a.first()) {
            keys(schema, items, first, &format!("{path}[0]"), out);
        }
        return;
    }
    let Some(properties) = node.get("properties").and_then(Value::as_object) else {
        return;
    };
    let required: Vec<&str> = node["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (key, property) in properties {
        let key_path = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        let here = value.get(key).cloned().unwrap_or(Value::Null);
        keys(schema, property, &here, &key_path, out);
        out.push(Key {
            path: key_path,
            schema: resolve(schema, property),
            default: property.get("default"),
            required: required.contains(&key.as_str()),
            value: here,
        });
    }
}

/// A value with the null members of its objects left out (TOML has no null: the schema states
/// a table's default without its unset keys).
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

#[test]
fn a_config_setting_every_key_is_valid_for_both() {
    let dir = workdir();
    let [webdataset, parquet] = shard_key_configs();
    let texts = [every_key_config(), webdataset, parquet];
    for text in &texts {
        assert_eq!(plan_verdict(dir.path(), text), Ok(()), "layerwise: {text}");
    }
    assert_eq!(schema_verdicts(&texts), vec![None, None, None]);
    // Every key the schema knows is set in one of them, and none to its default.
    let schema = config_schema();
    let mut set: std::collections::BTreeMap<String, Value> = Default::default();
    let mut all = Vec::new();
    for text in &texts {
        let written = serde_json::to_value(toml::from_str::<toml::Table>(text).unwrap()).unwrap();
        let mut found = Vec::new();
        keys(&schema, &schema, &written, "", &mut found);
        for key in found {
            if !key.value.is_null() {
                if let Some(default) = key.default {
                    assert_ne!(
                        &without_nulls(&key.value),
                        default,
                        "`{}` is its default",
                        key.path
                    );
                }
                set.insert(key.path.clone(), key.value.clone());
            }
            if !all.contains(&key.path) {
                all.push(key.path);
            }
        }
    }
    for path in &all {
        assert!(set.contains_key(path), "no every-key config sets `{path}`");
    }
    assert_eq!(
        all.len(),
        53,
        "keys in the schema (tables included): a new key belongs in this config"
    );
}

#[test]
fn every_default_in_the_schema_is_what_the_parser_fills_in() {
    let minimal = Config::from_toml(
        "name = \"minimal\"\n[input]\nroot = \"images\"\n[model]\npath = \"m.onnx\"\n\
         [[layers]]\ntensor = \"conv1\"\n",
    )
    .unwrap();
    let minimal = serde_json::to_value(&minimal).unwrap();
    let schema = config_schema();
    let mut all = Vec::new();
    keys(&schema, &schema, &minimal, "", &mut all);
    let mut defaults = Vec::new();
    for key in &all {
        match key.default {
            Some(default) => {
                assert!(
                    !key.required,
                    "`{}` is required and has a default",
                    key.path
                );
                assert_eq!(
                    default,
                    &without_nulls(&key.value),
                    "`{}`: the schema's default is not what the parser fills in",
                    key.path
                );
                defaults.push(key.path.as_str());
            }
            // An optional key without a default is one whose absence means unset (`root`
            // is optional since a list or shards may stand for it, and this config sets it).
            None if !key.required && key.path != "input.root" => assert!(
                key.value.is_null(),
                "`{}` is optional and has no default in the schema, but the parser fills in {} \
                 (schema {})",
                key.path,
                key.value,
                key.schema
            ),
            None => {}
        }
    }
    assert_eq!(
        defaults.len(),
        21,
        "keys with a default in the schema: {defaults:?}"
    );
}

#[test]
fn every_config_key_is_classified_as_identity_or_execution() {
    use layerwise::config::identity::{role, Role, KEYS};
    let schema = config_schema();
    let [webdataset, parquet] = shard_key_configs();
    let mut leaves = std::collections::BTreeSet::new();
    for text in [every_key_config(), webdataset, parquet] {
        let written = serde_json::to_value(toml::from_str::<toml::Table>(&text).unwrap()).unwrap();
        let mut found = Vec::new();
        keys(&schema, &schema, &written, "", &mut found);
        for key in found {
            let items = key.schema.get("items").map(|i| resolve(&schema, i));
            let table = key.schema.get("properties").is_some()
                || items.is_some_and(|i| i.get("properties").is_some());
            if !table {
                leaves.insert(key.path.replace("[0]", ""));
            }
        }
    }
    for leaf in &leaves {
        assert!(
            role(leaf).is_some(),
            "`{leaf}` is neither identity nor execution: classify it in KEYS \
             (src/config/identity.rs)"
        );
    }
    for (key, _) in KEYS {
        assert!(
            leaves
                .iter()
                .any(|leaf| leaf == key || leaf.starts_with(&format!("{key}."))),
            "KEYS names `{key}`, a key the config does not have"
        );
    }
    assert_eq!(role("input.a_future_format"), Some(Role::Identity));
    assert_eq!(role("run.a_future_knob"), None);
}
