//! `[output] compression`: the Parquet codec of each table, chosen by measurement
//! (`benches/RESULTS.md`, issue 26) and overridden by one codec for every table or a codec per
//! table.

use std::borrow::Cow;
use std::fmt;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

/// Parquet compression codec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Zstandard (level 1): compact, and fast to read.
    #[default]
    Zstd,
    /// Snappy: several times faster to write than Zstandard, somewhat larger.
    Snappy,
    /// LZ4 (the `LZ4_RAW` codec of Parquet): about as fast and as large as Snappy; read by
    /// pyarrow, DuckDB and Polars, not by some older readers.
    #[serde(rename = "lz4_raw")]
    Lz4Raw,
    /// No compression.
    None,
}

impl Compression {
    /// No compression (the default of `positions_compression`).
    pub fn none() -> Compression {
        Compression::None
    }

    /// Whether this is no compression.
    pub fn is_none(&self) -> bool {
        *self == Compression::None
    }
}

/// `[output.compression]`: a codec per table, each optional (the table's default where absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TableCompression {
    /// The `images` table's codec (default `"zstd"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Compression>,
    /// The `stats` table's codec (default `"zstd"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Compression>,
    /// The `maps` table's codec (default `"snappy"`: float maps compress little, and Snappy
    /// writes them at a fraction of Zstandard's CPU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maps: Option<Compression>,
    /// The `vectors` table's codec (default `"zstd"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vectors: Option<Compression>,
    /// The `top` table's codec (default `"zstd"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top: Option<Compression>,
}

/// `[output] compression`: each table's default codec, one codec for every table but
/// `positions` (`compression = "zstd"`), or a codec per table (`[output.compression]` with
/// `maps = "lz4_raw"`, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compressions {
    /// One codec for every table but `positions`.
    All(Compression),
    /// A codec per table, the defaults for the others (an empty table: every default).
    PerTable(TableCompression),
}

/// Each table's default codec.
impl Default for Compressions {
    fn default() -> Self {
        Compressions::PerTable(TableCompression::default())
    }
}

impl Compressions {
    /// Whether every table keeps its default (the key is then left out of a written config).
    pub fn is_default(&self) -> bool {
        *self == Compressions::default()
    }

    /// The codec of each table, `positions` taking `positions`.
    pub fn codecs(&self, positions: Compression) -> Codecs {
        let defaults = Codecs {
            images: Compression::Zstd,
            stats: Compression::Zstd,
            maps: Compression::Snappy,
            vectors: Compression::Zstd,
            top: Compression::Zstd,
            positions,
        };
        match *self {
            Compressions::All(codec) => Codecs {
                images: codec,
                stats: codec,
                maps: codec,
                vectors: codec,
                top: codec,
                positions,
            },
            Compressions::PerTable(t) => Codecs {
                images: t.images.unwrap_or(defaults.images),
                stats: t.stats.unwrap_or(defaults.stats),
                maps: t.maps.unwrap_or(defaults.maps),
                vectors: t.vectors.unwrap_or(defaults.vectors),
                top: t.top.unwrap_or(defaults.top),
                positions,
            },
        }
    }
}

/// Written back as in a config: the codec's name, or the table of codecs.
impl Serialize for Compressions {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Compressions::All(codec) => codec.serialize(s),
            Compressions::PerTable(tables) => tables.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Compressions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Compressions;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    r#"a codec ("zstd", "snappy", "lz4_raw" or "none") or a table of codecs by table name"#,
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Compressions, E> {
                let codec = Compression::deserialize(serde::de::value::StrDeserializer::new(v))?;
                Ok(Compressions::All(codec))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Compressions, A::Error> {
                let tables = TableCompression::deserialize(
                    serde::de::value::MapAccessDeserializer::new(map),
                )?;
                Ok(Compressions::PerTable(tables))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// What [`Compressions`]' deserializer takes: a codec for every table but `positions`, or a
/// table of codecs by table name.
impl JsonSchema for Compressions {
    fn schema_name() -> Cow<'static, str> {
        "Compressions".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let codec = generator.subschema_for::<Compression>();
        let tables = generator.subschema_for::<TableCompression>();
        json_schema!({
            "description": "Parquet codecs: one for every table but `positions`, or a table of codecs by table name (the others keep their defaults: \"snappy\" for maps, \"zstd\" for the rest).",
            "oneOf": [codec, tables]
        })
    }
}

/// The codec of each table of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codecs {
    /// `images`.
    pub images: Compression,
    /// `stats`.
    pub stats: Compression,
    /// `maps`.
    pub maps: Compression,
    /// `vectors`.
    pub vectors: Compression,
    /// `top`.
    pub top: Compression,
    /// `positions`.
    pub positions: Compression,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Serialize)]
    struct Output {
        #[serde(default)]
        compression: Compressions,
    }

    fn parse(text: &str) -> Result<Codecs, String> {
        let output: Output = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        Ok(output.compression.codecs(Compression::None))
    }

    #[test]
    fn maps_default_to_snappy_the_others_to_zstd() {
        let c = parse("").unwrap();
        assert_eq!(c.maps, Compression::Snappy);
        assert_eq!(
            [c.images, c.stats, c.vectors, c.top],
            [Compression::Zstd; 4]
        );
        assert_eq!(c.positions, Compression::None);
    }

    #[test]
    fn one_codec_overrides_every_table_but_positions() {
        let c = parse(r#"compression = "zstd""#).unwrap();
        assert_eq!(
            [c.images, c.stats, c.maps, c.vectors, c.top],
            [Compression::Zstd; 5]
        );
        assert_eq!(c.positions, Compression::None);
        let c = parse(r#"compression = "lz4_raw""#).unwrap();
        assert_eq!(c.stats, Compression::Lz4Raw);
    }

    #[test]
    fn a_table_of_codecs_overrides_those_it_names() {
        let c = parse("[compression]\nmaps = \"lz4_raw\"\nstats = \"none\"").unwrap();
        assert_eq!(c.maps, Compression::Lz4Raw);
        assert_eq!(c.stats, Compression::None);
        assert_eq!(c.images, Compression::Zstd);
    }

    #[test]
    fn mistakes_are_named() {
        let e = parse(r#"compression = "gzip""#).unwrap_err();
        assert!(e.contains("unknown variant `gzip`"), "{e}");
        assert!(e.contains("lz4_raw"), "{e}");
        let e = parse("[compression]\nmasp = \"none\"").unwrap_err();
        assert!(e.contains("unknown field `masp`"), "{e}");
        assert!(e.contains("`maps`"), "{e}");
        let e = parse("compression = 3").unwrap_err();
        assert!(e.contains("a codec"), "{e}");
    }

    #[test]
    fn written_back_as_written() {
        for text in [
            "compression = \"snappy\"\n",
            "[compression]\nmaps = \"lz4_raw\"\n",
        ] {
            let output: Output = toml::from_str(text).unwrap();
            assert_eq!(toml::to_string(&output).unwrap(), text);
        }
    }
}
