//! The modules' imports point one way, down the flow the README describes: config -> plan ->
//! input and model -> reduce -> output -> engine -> pipeline and extract -> view and the commands
//! -> compare (reads runs) -> the command line and the bindings' surface (`cli`, `api`). A module
//! may `use crate::` a module of an earlier layer, or one of the base modules that every layer
//! shares, and nothing else but the exceptions listed here, each with its reason. A new module
//! must be given its layer here.

use std::path::Path;

use crate::common::*;

/// Shared by every layer; they import only each other.
const BASE: &[&str] = &["error", "digest", "cpu", "progress", "location", "shard"];

/// The layers, first to last; modules of one layer do not import each other.
const LAYERS: &[&[&str]] = &[
    &["config"],
    &["plan"],
    &["input", "model"],
    &["reduce"],
    &["output"],
    &["engine"],
    &["pipeline", "extract"],
    &["view", "check", "doctor", "init"],
    &["compare"],
    &["report"],
    &["api", "cli"],
];

/// Imports against the layers, allowed: (importing module, imported path prefix, why).
const EXCEPTIONS: &[(&str, &str, &str)] = &[
    (
        "plan",
        "model",
        "a plan is the config checked against the model file: it reads the ONNX graph \
         (model::ModelFile) and resolves the layer selectors (model::select) before any session \
         exists; the session side of model takes the plan's specs, not the other way round",
    ),
    (
        "reduce",
        "output::tables",
        "the reducers fill the tables' typed row builders (output::tables::Rows): the table \
         contract is defined once, where the Parquet schemas are, and reduce produces its rows",
    ),
];

/// The layer of a top module: `None` for the base, `Some(i)` for `LAYERS[i]`; panics on a
/// module that has none.
fn layer(module: &str) -> Option<usize> {
    if BASE.contains(&module) {
        return None;
    }
    let found = LAYERS.iter().position(|l| l.contains(&module));
    Some(found.unwrap_or_else(|| {
        panic!("module `{module}` has no layer: add it to LAYERS or BASE in tests/it/layering.rs")
    }))
}

/// The top module a source file belongs to (`src/input/parquet.rs` -> `input`).
fn module_of(file: &Path, src: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// The paths after `crate::` of the `use` items in `text` (`crate::a::{b, c}` gives `a::b`,
/// `a::c`; `crate::{a, b}` gives `a`, `b`).
fn imports(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("use crate::") {
        let start = at + "use crate::".len();
        let end = rest[start..].find(';').map_or(rest.len(), |e| start + e);
        let item: String = rest[start..end].split_whitespace().collect();
        rest = &rest[end..];
        match item.split_once('{') {
            Some((head, tail)) => {
                for name in tail
                    .trim_end_matches('}')
                    .split(',')
                    .filter(|n| !n.is_empty())
                {
                    let name = name.split("::").next().unwrap_or(name);
                    found.push(format!("{head}{name}").trim_end_matches("::").to_owned());
                }
            }
            None => found.push(item),
        }
    }
    found
}

/// Why `module` may not `use crate::{path}`, or `None` when it may; the exception that allows
/// it, if one does.
fn verdict(module: &str, path: &str) -> (Option<String>, Option<usize>) {
    let target = path.split("::").next().unwrap();
    if target == module || target == "self" {
        return (None, None);
    }
    let allowed = match (layer(module), layer(target)) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(here), Some(there)) => there < here,
    };
    let exception = EXCEPTIONS
        .iter()
        .position(|(m, prefix, _)| *m == module && path.starts_with(prefix));
    match (allowed, exception) {
        (false, None) => (Some(format!("{module} may not import {target}")), None),
        (_, exception) => (None, exception),
    }
}

#[test]
fn imports_point_down_the_layers() {
    let src = root().join("src");
    let mut wrong = Vec::new();
    let mut used = vec![false; EXCEPTIONS.len()];
    for entry in walkdir::WalkDir::new(&src) {
        let file = entry.unwrap().into_path();
        let name = file.file_name().unwrap().to_string_lossy();
        if !name.ends_with(".rs") || name == "lib.rs" || name == "main.rs" {
            continue;
        }
        let module = module_of(&file, &src);
        for path in imports(&std::fs::read_to_string(&file).unwrap()) {
            let (why, exception) = verdict(&module, &path);
            if let Some(i) = exception {
                used[i] = true;
            }
            if let Some(why) = why {
                let file = file.strip_prefix(root()).unwrap().display().to_string();
                wrong.push(format!("{file}: `use crate::{path}` ({why})"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers (see tests/it/layering.rs):\n{}",
        wrong.join("\n")
    );
    for ((module, prefix, _), used) in EXCEPTIONS.iter().zip(used) {
        assert!(
            used,
            "the exception `{module}` -> `{prefix}` is no longer needed: remove it"
        );
    }
}

#[test]
fn the_rule_refuses_imports_up_the_layers_and_between_siblings() {
    let refused = |module: &str, path: &str| verdict(module, path).0;
    assert_eq!(
        refused("input", "output::store::Store").as_deref(),
        Some("input may not import output")
    );
    assert_eq!(
        refused("config", "plan::Plan").as_deref(),
        Some("config may not import plan")
    );
    assert_eq!(
        refused("model", "input::preprocess").as_deref(),
        Some("model may not import input")
    );
    assert_eq!(
        refused("location", "config::Config").as_deref(),
        Some("location may not import config")
    );
    assert_eq!(
        refused("reduce", "output::sink::Sink").as_deref(),
        Some("reduce may not import output")
    );
    for (module, path) in [
        ("view", "engine::Prepared"),
        ("output", "reduce::LayerReducer"),
        ("input", "location::Location"),
        ("reduce", "output::tables::Rows"),
        ("plan", "model::select"),
    ] {
        assert_eq!(refused(module, path), None, "{module} -> {path}");
    }
}

#[test]
fn import_paths_are_read_from_use_items() {
    let text = "use crate::a::b;\n    pub use crate::c::{d, e::F};\nuse crate::{g, h::I};\n\
                use crate::input::shards::open_local;\n";
    assert_eq!(
        imports(text),
        [
            "a::b",
            "c::d",
            "c::e",
            "g",
            "h",
            "input::shards::open_local"
        ]
    );
}
