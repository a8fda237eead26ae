//! The output folder as a dataset that one process, or several at once, builds part by part.
//!
//! `OUT/_manifest.json` says which run the folder holds (a hash of everything in the config that
//! changes the output, and of the listing); `OUT/_parts/part-NNNNN.json` marks a committed part
//! (its table files are renamed into place first, then the marker is written). A rerun skips the
//! committed parts; a folder that holds another run is refused, naming the difference.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::identity::RunIdentity;
use crate::location::Location;
use crate::output::sink::TableCounts;
use crate::output::store::Store;
use crate::output::tables::Table;
use crate::plan::Plan;

/// The manifest's file name.
pub const MANIFEST: &str = "_manifest.json";
/// The folder of part markers.
pub const PARTS: &str = "_parts";

/// What a run's input listing holds, as a manifest records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// SHA-256 of the listed names.
    pub hash: String,
    /// The images, when known before reading.
    pub images: Option<usize>,
    /// The parts.
    pub parts: usize,
}

/// Which run a folder holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// `layerwise <version>`.
    pub tool: String,
    /// The config file, as given to the first process.
    pub config_path: String,
    /// SHA-256 of `config`.
    pub config_hash: String,
    /// SHA-256 of the listing's relative paths, or of the shard names.
    pub listing_hash: String,
    /// Files in the listing; `None` for shards, whose samples are counted as they are read.
    pub images: Option<usize>,
    /// Images per part; `None` for shards (one part each).
    pub part_size: Option<usize>,
    /// Parts of the whole run.
    pub parts: usize,
    /// The `--limit` the listing was cut to, if any.
    pub limit: Option<usize>,
    /// What the config hash covers: the run's identity ([`RunIdentity`]), the config without
    /// its execution settings, plus the model's SHA-256. Manifests of 0.1.0 hold some execution
    /// settings here too; they are left out when two manifests are compared.
    pub config: Value,
}

impl Manifest {
    /// The manifest of a plan of identity `identity` over what was listed.
    pub fn new(
        plan: &Plan,
        identity: RunIdentity,
        config_path: &Path,
        listed: &Listed,
    ) -> Result<Manifest> {
        Ok(Manifest {
            tool: format!("layerwise {}", env!("CARGO_PKG_VERSION")),
            config_path: std::path::absolute(config_path)
                .unwrap_or_else(|_| config_path.to_owned())
                .display()
                .to_string(),
            config_hash: identity.hash(),
            listing_hash: listed.hash.clone(),
            images: listed.images,
            part_size: listed.images.map(|_| plan.run.part_size),
            parts: listed.parts,
            limit: plan.input.limit,
            config: identity.value().clone(),
        })
    }

    /// Why `self` (stored) and `now` are not the same run, if they are not.
    fn difference(&self, now: &Manifest) -> Option<String> {
        let diffs =
            RunIdentity::recorded(&self.config).differences(&RunIdentity::recorded(&now.config));
        if !diffs.is_empty() {
            let shown: Vec<String> = diffs.iter().take(3).cloned().collect();
            return Some(format!("its config differs: {}", shown.join("; ")));
        }
        if self.listing_hash != now.listing_hash {
            let what = |m: &Manifest| match m.images {
                Some(images) => format!("{images} files"),
                None => format!("{} shards", m.parts),
            };
            return Some(match (self.images, now.images) {
                _ if what(self) == what(now) => format!(
                    "its listing differs: {} then and now, but not the same ones",
                    what(now)
                ),
                (Some(then), Some(images)) => {
                    format!("its listing differs: {then} files then, {images} now")
                }
                _ => format!(
                    "its listing differs: {} then, {} now",
                    what(self),
                    what(now)
                ),
            });
        }
        None
    }
}

/// The marker of a committed part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartMarker {
    /// The part.
    pub part: usize,
    /// Its first `image_id`.
    pub first_image: u64,
    /// One past its last `image_id`.
    pub end_image: u64,
    /// Images run through the model.
    pub ok: u64,
    /// Images that could not be used.
    pub error: u64,
    /// Rows per table.
    pub rows: BTreeMap<String, u64>,
    /// File bytes per table.
    pub bytes: BTreeMap<String, u64>,
    /// The run's config hash.
    pub config_hash: String,
    /// The run's listing hash.
    pub listing_hash: String,
    /// The shard that wrote it.
    pub shard: String,
    /// When (UTC).
    pub committed_at: String,
}

impl PartMarker {
    /// The rows and bytes per table, as counts.
    pub fn counts(&self) -> TableCounts {
        let mut counts = TableCounts::default();
        for (i, t) in Table::ALL.iter().enumerate() {
            counts.rows[i] = self.rows.get(t.name()).copied().unwrap_or(0);
            counts.bytes[i] = self.bytes.get(t.name()).copied().unwrap_or(0);
        }
        counts
    }
}

/// An output location and the run it holds.
pub struct Dataset {
    /// Where the files are.
    pub store: Store,
    /// The run it holds.
    pub manifest: Manifest,
}

impl Dataset {
    /// Opens `location` for the run `manifest` describes: a new location gets the manifest; one
    /// holding the same run is resumed; one holding another run is refused, naming the
    /// difference. `overwrite` removes whatever run is there first (never with concurrent shards).
    pub fn open(location: &Location, manifest: Manifest, overwrite: bool) -> Result<Dataset> {
        let store = Store::open(location)?;
        if let Store::Local(dir) = &store {
            std::fs::create_dir_all(dir.join(PARTS)).with_context(|| {
                format!(
                    "cannot create the output folder {}; set `output.dir` (or --out) to a \
                         folder you can write to",
                    dir.display()
                )
            })?;
        }
        let stored: Option<Manifest> = match store.read(MANIFEST)? {
            // Replaced whatever it holds, a damaged manifest too.
            Some(_) if overwrite => {
                clear(&store)?;
                None
            }
            Some(bytes) => Some(parse_manifest(&bytes, &store)?),
            None => None,
        };
        let unknown = stored.is_none()
            && !store
                .list("")?
                .iter()
                .all(|n| n == PARTS || n.starts_with('.'));
        match stored {
            Some(stored) => {
                if let Some(why) = stored.difference(&manifest) {
                    crate::mistake!(
                        "{} holds another run: {why}. Pass --overwrite to replace it, or choose \
                         another folder with --out",
                        store.display()
                    );
                }
                return Ok(Dataset {
                    store,
                    manifest: stored,
                });
            }
            None if unknown && !overwrite => crate::mistake!(
                "{} holds files but no {MANIFEST}; pass --overwrite to replace them, or choose \
                 another folder with --out",
                store.display()
            ),
            None if unknown => clear(&store)?,
            None => {}
        }
        // Several shards may start at once: the first manifest wins, the others check it.
        if store.create(MANIFEST, serde_json::to_vec_pretty(&manifest)?)? {
            Ok(Dataset { store, manifest })
        } else {
            Dataset::open(location, manifest, false)
        }
    }

    /// Opens a location that holds a run, to look at it.
    pub fn read(location: &Location) -> Result<Dataset> {
        let store = Store::open(location)?;
        let Some(bytes) = store.read(MANIFEST)? else {
            crate::mistake!("{} holds no layerwise run (no {MANIFEST})", store.display());
        };
        let manifest = parse_manifest(&bytes, &store)?;
        Ok(Dataset { store, manifest })
    }

    /// The committed parts of this run, by part number.
    pub fn markers(&self) -> Result<BTreeMap<usize, PartMarker>> {
        let mut markers = BTreeMap::new();
        for name in self.store.list(PARTS)? {
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            let Some(bytes) = self.store.read(&format!("{PARTS}/{name}"))? else {
                continue;
            };
            let marker: PartMarker = serde_json::from_slice(&bytes)
                .with_context(|| format!("cannot parse {PARTS}/{name}"))?;
            if marker.config_hash == self.manifest.config_hash
                && marker.listing_hash == self.manifest.listing_hash
            {
                markers.insert(marker.part, marker);
            }
        }
        Ok(markers)
    }

    /// Marks a part committed (its files are in place).
    pub fn commit(&self, marker: &PartMarker) -> Result<()> {
        let name = format!("{PARTS}/part-{:05}.json", marker.part);
        self.store.write(&name, serde_json::to_vec_pretty(marker)?)
    }
}

/// Removes a run's files.
fn clear(store: &Store) -> Result<()> {
    let tables = Table::ALL.map(Table::name);
    let names: Vec<&str> = tables
        .iter()
        .copied()
        .chain([PARTS, MANIFEST, "run.json"])
        .collect();
    store.clear(&names)?;
    if let Store::Local(dir) = store {
        std::fs::create_dir_all(dir.join(PARTS))?;
    }
    Ok(())
}

/// Where a run stands.
#[derive(Debug, Clone)]
pub struct Status {
    /// The location.
    pub location: String,
    /// The run it holds.
    pub manifest: Manifest,
    /// Its committed parts.
    pub markers: BTreeMap<usize, PartMarker>,
}

impl Dataset {
    /// Where the run stands.
    pub fn status(&self) -> Result<Status> {
        Ok(Status {
            location: self.store.display(),
            manifest: self.manifest.clone(),
            markers: self.markers()?,
        })
    }
}

impl Status {
    /// Whether every part is committed.
    pub fn complete(&self) -> bool {
        self.markers.len() == self.manifest.parts
    }

    /// The parts not committed yet.
    pub fn missing(&self) -> Vec<usize> {
        (0..self.manifest.parts)
            .filter(|p| !self.markers.contains_key(p))
            .collect()
    }

    /// The report for a person.
    pub fn to_text(&self) -> String {
        let m = &self.manifest;
        let mut counts = TableCounts::default();
        let (mut ok, mut error) = (0, 0);
        for marker in self.markers.values() {
            counts.add(&marker.counts());
            ok += marker.ok;
            error += marker.error;
        }
        let missing = self.missing();
        let (each, of) = match (m.part_size, m.images) {
            (Some(size), Some(images)) => (format!("{size} images each"), format!(" of {images}")),
            _ => ("one shard each".to_owned(), String::new()),
        };
        let mut out = format!(
            "{}: {} of {} parts committed ({each}), {} missing\n\
             images: {}{of} done, {ok} ok, {error} error\n",
            self.location,
            self.markers.len(),
            m.parts,
            missing.len(),
            ok + error,
        );
        for (i, t) in Table::ALL.iter().enumerate() {
            out.push_str(&format!(
                "  {:<8} {:>12} rows {:>12}\n",
                t.name(),
                counts.rows[i],
                crate::progress::bytes(counts.bytes[i])
            ));
        }
        if missing.is_empty() {
            out.push_str("complete\n");
        } else {
            let list: Vec<String> = missing.iter().take(20).map(usize::to_string).collect();
            let more = if missing.len() > 20 { ", ..." } else { "" };
            let limit = m.limit.map_or(String::new(), |n| format!(" --limit {n}"));
            out.push_str(&format!(
                "missing parts: {}{more}\nfinish them with: layerwise run {} --out {}{limit}\n",
                list.join(", "),
                m.config_path,
                self.location
            ));
        }
        out
    }
}

/// The manifest in `bytes`; a damaged one is a mistake to fix, not to retry (exit 2).
fn parse_manifest(bytes: &[u8], store: &Store) -> Result<Manifest> {
    match serde_json::from_slice(bytes) {
        Ok(manifest) => Ok(manifest),
        Err(e) => crate::mistake!(
            "{}: its {MANIFEST} is damaged ({e}); remove the folder, or pass --overwrite to \
             replace it",
            store.display()
        ),
    }
}
