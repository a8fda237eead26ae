//! What makes a run the run it is: the config settings that change what is written, as opposed
//! to those that change only how fast or where it runs.
//!
//! Every key of the config is classified in [`KEYS`]; a test walks the config's JSON Schema and
//! fails on a key that is not, so a new setting cannot silently become part of a run's identity
//! (or silently leave it). The tasks of one run (a Slurm array, an Indexed Job) and a run and
//! its resume must agree on the identity; they may differ in every execution setting.

use serde_json::Value;

use crate::config::Config;
use crate::digest::sha256_hex;

/// What a config key is to a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It changes what is written: every task of a run, and every resume, must have the same
    /// value.
    Identity,
    /// It changes only how fast, or where, the run goes (threads, batching, the runtime library,
    /// the execution provider, the output folder): tasks and resumes may differ in it.
    Execution,
}

/// Every key of a config, by its dotted path (`[[layers]]` keys as `layers.KEY`), with its
/// role; a table listed (`input`) gives its role to every key in it, present and future.
///
/// Decided, not obvious:
/// - `[input]` is identity as a whole: each of its keys decides which images, or which bytes
///   of each, are read (a new input format's key is one of them).
/// - `model.path` is execution: the model is identified by the SHA-256 of its bytes, which the
///   identity holds, not by where the file lies (a node may keep it elsewhere).
/// - `run.provider`, `run.device` and `run.reduce` are execution: CPU and GPU providers, and
///   statistics reduced by layerwise or in the graph, compute the same quantities; they agree
///   within 1e-5 (relative), not bit for bit, as two CPUs of different kinds can. A run whose
///   parts came from several kinds of node records each part's provider in its provenance.
/// - `run.part_size` is identity: it decides which images each part holds.
/// - `output.map_dtype` is identity: the format of what is written. `output.compression` and
///   `output.positions_compression` are execution: a codec changes the bytes on disk, not the
///   values read back, so a run resumed with other codecs (or by a version with other default
///   codecs) writes its remaining parts with them.
pub const KEYS: &[(&str, Role)] = &[
    ("name", Role::Identity),
    ("input", Role::Identity),
    ("model.path", Role::Execution),
    ("model.input", Role::Identity),
    ("preprocess.size", Role::Identity),
    ("preprocess.resize", Role::Identity),
    ("preprocess.layout", Role::Identity),
    ("preprocess.channel_order", Role::Identity),
    ("preprocess.scale", Role::Identity),
    ("preprocess.mean", Role::Identity),
    ("preprocess.std", Role::Identity),
    ("run.batch_size", Role::Execution),
    ("run.threads", Role::Execution),
    ("run.part_size", Role::Identity),
    ("run.onnxruntime", Role::Execution),
    ("run.provider", Role::Execution),
    ("run.device", Role::Execution),
    ("run.decode_threads", Role::Execution),
    ("run.inference_threads", Role::Execution),
    ("run.queue_depth", Role::Execution),
    ("run.max_error_fraction", Role::Execution),
    ("run.reduce", Role::Execution),
    ("layers.name", Role::Identity),
    ("layers.tensor", Role::Identity),
    ("layers.keep", Role::Identity),
    ("layers.channel_axis", Role::Identity),
    ("layers.tokens", Role::Identity),
    ("layers.batch_axis", Role::Identity),
    ("layers.positions", Role::Identity),
    ("layers.positions_dtype", Role::Identity),
    ("layers.top_k", Role::Identity),
    ("layers.top_by", Role::Identity),
    ("layers.pool", Role::Identity),
    ("output.dir", Role::Execution),
    ("output.compression", Role::Execution),
    ("output.positions_compression", Role::Execution),
    ("output.map_dtype", Role::Identity),
    ("output.shuffle", Role::Identity),
];

/// The role of the key at a dotted path: its own, or that of the nearest table holding it that
/// [`KEYS`] lists; `None` if neither is classified.
pub fn role(path: &str) -> Option<Role> {
    let listed = |path: &str| KEYS.iter().find(|(key, _)| *key == path).map(|(_, r)| *r);
    listed(path).or_else(|| role(&path[..path.rfind('.')?]))
}

/// The key where a run's identity records its model's SHA-256.
const MODEL_SHA256: &str = "model_sha256";

/// A run's identity: its config with the execution settings left out, plus the SHA-256 of its
/// model, as JSON. Two runs with equal identities write the same tables (up to the rounding that
/// execution settings may bring, see [`KEYS`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RunIdentity(Value);

impl RunIdentity {
    /// The identity of a run of `config` over a model whose bytes hash to `model_sha256`.
    pub fn of(config: &Config, model_sha256: &str) -> RunIdentity {
        // Through text, so f32 values keep their short form (0.4, not 0.4000000059604645).
        let text = serde_json::to_string(config).expect("a config serializes");
        let mut value: Value = serde_json::from_str(&text).expect("serde_json reads its own text");
        if let Value::Object(map) = &mut value {
            map.insert(MODEL_SHA256.into(), model_sha256.into());
        }
        RunIdentity::recorded(&value)
    }

    /// The identity in what a manifest recorded, by any version: the execution settings it
    /// holds are left out (0.1.0 kept some of them, such as `run.queue_depth`), so a run started
    /// by an older version resumes when only they differ.
    pub fn recorded(value: &Value) -> RunIdentity {
        RunIdentity(identity_part(value, ""))
    }

    /// The JSON form, as a manifest records it.
    pub fn value(&self) -> &Value {
        &self.0
    }

    /// The SHA-256 of the JSON form.
    pub fn hash(&self) -> String {
        sha256_hex(self.0.to_string())
    }

    /// Where `self` (then) and `now` differ: "`key` was X, is now Y", by key path.
    pub fn differences(&self, now: &RunIdentity) -> Vec<String> {
        let mut out = Vec::new();
        differences(&self.0, &now.0, "", &mut out);
        out
    }
}

/// `value` (at key path `path`) without its execution settings. A key that [`KEYS`] does not
/// classify is kept: unknown settings count as identity.
fn identity_part(value: &Value, path: &str) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter_map(|(key, value)| {
                    let sub = join(path, key);
                    match role(&sub) {
                        Some(Role::Execution) => None,
                        Some(Role::Identity) => Some((key.clone(), value.clone())),
                        None => Some((key.clone(), identity_part(value, &sub))),
                    }
                })
                .collect(),
        ),
        // An array of tables (`[[layers]]`): each table's keys by the array's path.
        Value::Array(items) if items.iter().all(Value::is_object) => {
            Value::Array(items.iter().map(|v| identity_part(v, path)).collect())
        }
        other => other.clone(),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The key paths where two JSON values differ, with both values.
fn differences(old: &Value, new: &Value, path: &str, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                differences(
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                    &join(path, k),
                    out,
                );
            }
        }
        (Value::Array(a), Value::Array(b))
            if a.len() == b.len() && a.iter().chain(b).all(Value::is_object) =>
        {
            for (i, (a, b)) in a.iter().zip(b).enumerate() {
                differences(a, b, &format!("{path}[{i}]"), out);
            }
        }
        _ if old != new => out.push(format!("`{path}` was {old}, is now {new}")),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn differences_name_the_key_paths() {
        let mut out = Vec::new();
        differences(
            &json!({"preprocess": {"mean": [0, 0, 0], "std": [1]}, "name": "a",
                    "layers": [{"tensor": "a"}, {"tensor": "b"}]}),
            &json!({"preprocess": {"mean": [1, 0, 0], "std": [1]}, "name": "a", "extra": true,
                    "layers": [{"tensor": "a"}, {"tensor": "c"}]}),
            "",
            &mut out,
        );
        assert_eq!(
            out,
            [
                "`extra` was null, is now true",
                "`layers[1].tensor` was \"b\", is now \"c\"",
                "`preprocess.mean` was [0,0,0], is now [1,0,0]"
            ]
        );
    }

    #[test]
    fn execution_settings_leave_the_identity_and_unknown_keys_stay() {
        let recorded = json!({
            "name": "n",
            "model": {"path": "m.onnx", "input": null},
            "run": {"queue_depth": 2, "decode_threads": null, "part_size": 10, "reduce": "auto",
                    "future_speed_knob": 3},
            "layers": [{"tensor": "conv1", "keep": [0, 1]}],
            "output": {"compression": "zstd", "map_dtype": "float32"},
            "model_sha256": "abc"
        });
        assert_eq!(
            RunIdentity::recorded(&recorded).value(),
            &json!({
                "name": "n",
                "model": {"input": null},
                "run": {"part_size": 10, "future_speed_knob": 3},
                "layers": [{"tensor": "conv1", "keep": [0, 1]}],
                "output": {"map_dtype": "float32"},
                "model_sha256": "abc"
            })
        );
    }
}
