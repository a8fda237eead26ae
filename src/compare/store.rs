//! A shard's sums on disk (`DIR/shards/shard-00000-of-00004.cka`), so that `compare` runs per
//! shard and `compare --merge DIR` adds them up. The file: 8 bytes `LWCKA\0\0\x01`, the
//! header's length (u64, little-endian), the header (JSON: the comparison's [`Record`], this
//! shard, its images and its sampled pairs), then the sums' values and the sampled features
//! as little-endian f64. Files are written whole through a temporary name and checked whole
//! when read back, so a torn or foreign file is refused, never half-used.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::compare::accumulate::Accumulator;
use crate::compare::cka::CkaSums;
use crate::compare::Record;
use crate::shard::Shard;

/// The first bytes of a shard's file.
const MAGIC: &[u8; 8] = b"LWCKA\0\0\x01";

/// What a shard's file says besides the numbers.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Header {
    record: Record,
    shard: (usize, usize),
    images: u64,
    sampled: Vec<usize>,
}

/// The folder of the shards' files in `dir`.
pub fn folder(dir: &Path) -> PathBuf {
    dir.join("shards")
}

/// Writes a shard's sums into `dir`'s shard folder; returns the file.
pub fn write(dir: &Path, record: &Record, shard: Shard, sums: &Accumulator) -> Result<PathBuf> {
    let folder = folder(dir);
    std::fs::create_dir_all(&folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    let header = Header {
        record: record.clone(),
        shard: (shard.index, shard.count),
        images: sums.sums.images(),
        sampled: sums.sample.iter().map(|s| s.0).collect(),
    };
    let json = serde_json::to_vec(&header)?;
    let mut bytes = Vec::with_capacity(16 + json.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(json.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&json);
    let numbers = sums
        .sums
        .values()
        .chain(sums.sample.iter().flat_map(|s| s.1.iter().copied()));
    for v in numbers {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    let name = format!("shard-{:05}-of-{:05}.cka", shard.index, shard.count);
    let path = folder.join(&name);
    crate::compare::write_whole(&path, &bytes)?;
    Ok(path)
}

/// Reads every shard's file in `dir`'s shard folder and adds them up: the record and the
/// sums of the whole comparison. Refuses files of other comparisons, a shard twice, and
/// names the shards that are missing.
pub fn merge(dir: &Path) -> Result<(Record, Accumulator)> {
    let folder = folder(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .with_context(|| {
            format!(
                "cannot list {} (write shards with compare --shard)",
                folder.display()
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "cka"))
        .collect();
    files.sort();
    let mut merged: Option<(Record, Accumulator, Vec<bool>)> = None;
    for path in &files {
        let (header, sums) = read(path)?;
        let (index, count) = header.shard;
        let (record, total, seen) = merged.get_or_insert_with(|| {
            let empty = Accumulator {
                sums: CkaSums::new(&header.record.all_widths()),
                sample: Vec::new(),
            };
            (header.record.clone(), empty, vec![false; count])
        });
        if header.record != *record || count != seen.len() || index >= count {
            crate::mistake!(
                "{} is a shard of another comparison than {}: merge the shards of one \
                 comparison (the same runs, layers, features, RSA and shard count)",
                path.display(),
                files[0].display()
            );
        }
        if std::mem::replace(&mut seen[index], true) {
            crate::mistake!("{} holds shard {index}/{count} again", path.display());
        }
        total.merge(sums);
    }
    let Some((record, total, seen)) = merged else {
        crate::mistake!(
            "{} holds no shard's file (.cka): write them with compare --shard I/N --out {}",
            folder.display(),
            dir.display()
        );
    };
    let missing: Vec<String> = (seen.iter().enumerate())
        .filter(|(_, s)| !**s)
        .map(|(i, _)| format!("{i}/{}", seen.len()))
        .collect();
    if !missing.is_empty() {
        crate::mistake!(
            "{} lacks shards {}: run compare with --shard for each, then merge again",
            folder.display(),
            missing.join(", ")
        );
    }
    Ok((record, total))
}

/// One shard's file, checked whole.
fn read(path: &Path) -> Result<(Header, Accumulator)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let damaged = |why: &str| -> anyhow::Error {
        crate::error::Mistake(format!(
            "{} is not a whole shard's file of layerwise compare ({why}): write it again with compare --shard",
            path.display()
        ))
        .into()
    };
    if bytes.len() < 16 || &bytes[..8] != MAGIC {
        return Err(damaged("it does not start as one"));
    }
    let length = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    let end = usize::try_from(length)
        .ok()
        .and_then(|l| l.checked_add(16))
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| damaged("its header is cut short"))?;
    let header: Header = serde_json::from_slice(&bytes[16..end])
        .map_err(|e| damaged(&format!("its header: {e}")))?;
    let widths = header.record.all_widths();
    let (p, l) = (widths.iter().sum::<usize>(), widths.len());
    let counts = p
        .checked_mul(p)
        .and_then(|pp| pp.checked_add(p.checked_mul(l + 1)?))
        .and_then(|n| n.checked_add(l * l))
        .and_then(|n| n.checked_add(header.sampled.len().checked_mul(p)?))
        .and_then(|n| n.checked_mul(8));
    if counts != Some(bytes.len() - end) {
        return Err(damaged("its numbers do not fit its layers"));
    }
    let numbers: Vec<f64> = bytes[end..]
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect();
    let (sums, sample) = numbers.split_at(numbers.len() - header.sampled.len() * p);
    let sums = CkaSums::from_values(&widths, header.images, sums)
        .ok_or_else(|| damaged("its sums do not fit its layers"))?;
    let sample = (header.sampled.iter().copied())
        .zip(sample.chunks_exact(p.max(1)).map(<[f64]>::to_vec))
        .collect();
    Ok((header, Accumulator { sums, sample }))
}
