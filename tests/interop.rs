//! DuckDB reads the dataset natively: counts and values agree with what the Rust side wrote.

mod common;

use std::process::Command;

use common::*;

#[test]
fn duckdb_reads_every_table() {
    let dir = tempfile::tempdir().unwrap();
    write_images(
        &dir.path().join("images"),
        &[("a/x.png", 9, 9), ("b/y.jpg", 8, 12), ("b/z.png", 8, 8)],
    );
    write_html_as_jpg(&dir.path().join("images/a/bad.jpg"));
    let layers = "[[layers]]\nname = \"conv1\"\ntensor = \"conv1\"\nkeep = [1, 3]\n\
                  [[layers]]\nname = \"logits\"\ntensor = \"logits\"";
    let config = tiny_config_with_layers(dir.path(), "interop", layers);
    let record = run_quietly(&config).unwrap();
    let out = dir.path().join("out");
    let stats = read_table(&out, "stats");
    let maxima = primitives::<arrow_array::types::Float32Type>(&stats, "max");
    let rust_max = maxima.into_iter().fold(f32::NEG_INFINITY, f32::max);
    let script = r#"
import json, sys, duckdb
out = sys.argv[1]
q = lambda sql: duckdb.sql(sql.replace("OUT", out)).fetchall()
print(json.dumps({
    "rows": {t: q(f"SELECT count(*) FROM 'OUT/{t}/*.parquet'")[0][0] for t in ["images", "stats", "maps", "vectors", "top"]},
    "errors": q("SELECT path, error FROM 'OUT/images/*.parquet' WHERE status = 'error'"),
    "max": q("SELECT max(max) FROM 'OUT/stats/*.parquet'")[0][0],
    "map_len": q("SELECT DISTINCT len(values) FROM 'OUT/maps/*.parquet'"),
    "types": q("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM 'OUT/maps/*.parquet')"),
    "provenance": [json.loads(v) for (v,) in q(
        "SELECT decode(value) FROM parquet_kv_metadata('OUT/stats/*.parquet') "
        "WHERE decode(key) = 'layerwise.provenance'")],
}))
"#;
    let output = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    for (table, rows) in &record.counts.rows {
        assert_eq!(&got["rows"][table], rows, "{table}");
    }
    assert_eq!(got["rows"]["stats"], 12, "3 ok images x 4 channels");
    assert_eq!(
        got["errors"],
        serde_json::json!([[
            "a/bad.jpg",
            "not an image: looks like HTML (a saved error page?)"
        ]])
    );
    assert_eq!(got["max"].as_f64().unwrap() as f32, rust_max);
    assert_eq!(got["map_len"], serde_json::json!([[64]]));
    assert_eq!(
        got["types"],
        serde_json::json!([
            ["image_id", "UBIGINT"],
            ["layer", "VARCHAR"],
            ["channel", "UINTEGER"],
            ["height", "UINTEGER"],
            ["width", "UINTEGER"],
            ["values", "FLOAT[]"]
        ])
    );
    let provenance = got["provenance"].as_array().unwrap();
    assert_eq!(provenance.len(), 1, "one part file");
    assert_eq!(provenance[0]["name"], "interop");
    assert_eq!(
        provenance[0]["model"]["sha256"],
        record.provenance.model.sha256.as_str()
    );
}
