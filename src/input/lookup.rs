//! Some samples of a shard input read again after the run, by image id, for the pictures that
//! draw them (the report's examples, `layerwise plot top`): each shard that holds any is read
//! once, by the run's own reader, up to the last one wanted, the shards in parallel. The reader
//! reads only the wanted samples' images: a Parquet shard only the row groups and pages that
//! hold them, a tar shard every header but only the wanted members' bytes.

use std::collections::{BTreeMap, HashMap};

use rayon::prelude::*;

use crate::input::shards::Shard;
use crate::input::stream::Emitter;
use crate::input::{Content, Format, MAX_SHARD_SAMPLES};

/// A sample wanted again, as the run's `images` table records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted<'a> {
    /// Its id: `(part << 32) | position in the shard`.
    pub image_id: u64,
    /// Its shard (`images.source`).
    pub source: &'a str,
    /// Its name in the shard (`images.path`).
    pub path: &'a str,
}

/// The encoded image of each wanted sample, or why it cannot be had now: its shard is not
/// one of `shards` (the run's config, listed again), or is gone, or changed since the run.
pub fn encoded(
    format: &Format,
    shards: &[Shard],
    wanted: &[Wanted],
) -> HashMap<u64, Result<Vec<u8>, String>> {
    let named: HashMap<&str, &Shard> = shards.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut by_shard: BTreeMap<&str, Vec<&Wanted>> = BTreeMap::new();
    for w in wanted {
        by_shard.entry(w.source).or_default().push(w);
    }
    by_shard
        .into_par_iter()
        .flat_map_iter(|(source, wanted)| match named.get(source) {
            Some(shard) => read_shard(format, shard, &wanted),
            None => wanted
                .iter()
                .map(|w| {
                    let why = format!(
                        "its shard `{source}` is not one of those the run's config names now"
                    );
                    (w.image_id, Err(why))
                })
                .collect(),
        })
        .collect()
}

/// One pass over `shard`, keeping the samples `wanted` names.
fn read_shard(
    format: &Format,
    shard: &Shard,
    wanted: &[&Wanted],
) -> Vec<(u64, Result<Vec<u8>, String>)> {
    let source = shard.name.as_str();
    let last = wanted.iter().map(|w| w.image_id).max().unwrap_or(0);
    let part = (last / MAX_SHARD_SAMPLES) as usize;
    let positions = wanted
        .iter()
        .map(|w| w.image_id % MAX_SHARD_SAMPLES)
        .collect();
    let mut found: HashMap<u64, (String, Content)> = HashMap::new();
    let mut shard_error = None;
    let mut emit = Emitter::new(source, part, usize::MAX, |sample| {
        match (
            sample.path == source && sample.key.is_none(),
            sample.content,
        ) {
            (true, Content::Failed(reason)) => {
                shard_error = Some(reason);
                return false;
            }
            (_, content) => found.insert(sample.image_id, (sample.path, content)),
        };
        true
    })
    .only(positions);
    format.read(&shard.location, &mut emit);
    drop(emit);
    wanted
        .iter()
        .map(|w| {
            // A sample read before a shard-level error is still good.
            let got = match (found.remove(&w.image_id), &shard_error) {
                (Some((path, _)), _) if path != w.path => Err(format!(
                    "shard {source} changed since the run: its sample {} is now `{path}`, the \
                     run read `{}`",
                    w.image_id % MAX_SHARD_SAMPLES,
                    w.path
                )),
                (Some((_, Content::Bytes(bytes))), _) => Ok(bytes),
                (Some((_, Content::Failed(reason))), _) => Err(reason),
                (Some((_, Content::File(path))), _) => crate::input::preprocess::read_file(&path),
                (Some((_, Content::Pixels(_))), _) => Err("no shard holds pixels".to_owned()),
                (None, Some(reason)) => Err(format!("shard {source}: {reason}")),
                (None, None) => Err(format!(
                    "shard {source} now ends before sample {} (`{}`): it changed since the run",
                    w.image_id % MAX_SHARD_SAMPLES,
                    w.path
                )),
            };
            (w.image_id, got)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ::parquet::file::properties::WriterProperties;
    use arrow_array::{BinaryArray, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};

    use std::path::Path;

    use super::*;
    use crate::input::{parquet, shard_image_id, webdataset};
    use crate::location::Location;

    /// A tar shard of `n` samples `k00` .. (a `.txt` and a `.jpg` member each, the image's
    /// bytes `image k03`).
    fn tar_shard(path: &Path, n: usize) {
        let mut tar = tar::Builder::new(std::fs::File::create(path).unwrap());
        for i in 0..n {
            for (extension, data) in [
                ("txt", "label".to_owned()),
                ("jpg", format!("image k{i:02}")),
            ] {
                let mut header = tar::Header::new_gnu();
                header.set_size(data.len() as u64);
                header.set_mode(0o644);
                header.set_cksum();
                tar.append_data(&mut header, format!("k{i:02}.{extension}"), data.as_bytes())
                    .unwrap();
            }
        }
        tar.finish().unwrap();
    }

    /// A Parquet shard of `n` rows (a binary `jpg` column `image 3` ...) in row groups of 4.
    fn parquet_shard(path: &Path, n: usize) {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "jpg",
            DataType::Binary,
            false,
        )]));
        let images: Vec<String> = (0..n).map(|i| format!("image {i}")).collect();
        let column = BinaryArray::from_iter_values(images.iter().map(String::as_bytes));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(column)]).unwrap();
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(4))
            .build();
        let file = std::fs::File::create(path).unwrap();
        let mut writer =
            ::parquet::arrow::ArrowWriter::try_new(file, schema, Some(properties)).unwrap();
        writer.write(&batch).unwrap();
        assert_eq!(writer.close().unwrap().num_row_groups(), n.div_ceil(4));
    }

    /// The shards `names` in `dir`, as the run's config lists them.
    fn listed(dir: &Path, names: &[&str]) -> Vec<Shard> {
        names
            .iter()
            .map(|name| Shard {
                name: (*name).to_owned(),
                location: Location::Local(dir.join(name)),
            })
            .collect()
    }

    fn wanted<'a>(source: &'a str, part: usize, picks: &[(u64, &'a str)]) -> Vec<Wanted<'a>> {
        picks
            .iter()
            .map(|&(at, path)| Wanted {
                image_id: shard_image_id(part, at),
                source,
                path,
            })
            .collect()
    }

    #[test]
    fn only_the_wanted_samples_come_back_with_the_ids_of_the_run() {
        let dir = tempfile::tempdir().unwrap();
        tar_shard(&dir.path().join("a.tar"), 7);
        parquet_shard(&dir.path().join("a.parquet"), 10);
        let tar = Arc::new(webdataset::Fields::default()) as Format;
        let shards = listed(dir.path(), &["a.parquet", "a.tar"]);
        let got = encoded(
            &tar,
            &shards,
            &wanted("a.tar", 3, &[(1, "k01.jpg"), (5, "k05.jpg")]),
        );
        assert_eq!(got.len(), 2);
        assert_eq!(got[&shard_image_id(3, 1)], Ok(b"image k01".to_vec()));
        assert_eq!(got[&shard_image_id(3, 5)], Ok(b"image k05".to_vec()));
        // Rows in the first, third and (part of the) last row groups of four.
        let picks = [(0, "0"), (1, "1"), (9, "9"), (8, "8")];
        let got = encoded(
            &(Arc::new(parquet::Fields::default()) as Format),
            &shards,
            &wanted("a.parquet", 0, &picks),
        );
        assert_eq!(got.len(), 4);
        for (at, _) in picks {
            let want = format!("image {at}").into_bytes();
            assert_eq!(got[&shard_image_id(0, at)], Ok(want), "row {at}");
        }
    }

    #[test]
    fn a_shard_gone_or_changed_since_the_run_says_so() {
        let dir = tempfile::tempdir().unwrap();
        tar_shard(&dir.path().join("a.tar"), 3);
        let tar = Arc::new(webdataset::Fields::default()) as Format;
        let picks = [(1, "k01.jpg"), (2, "other.jpg"), (4, "k04.jpg")];
        let shards = listed(dir.path(), &["a.tar", "gone.tar"]);
        let got = encoded(&tar, &shards, &wanted("a.tar", 0, &picks));
        assert_eq!(got[&1], Ok(b"image k01".to_vec()));
        assert_eq!(
            got[&2],
            Err(
                "shard a.tar changed since the run: its sample 2 is now `k02.jpg`, the run read \
                 `other.jpg`"
                    .into()
            )
        );
        assert_eq!(
            got[&4],
            Err(
                "shard a.tar now ends before sample 4 (`k04.jpg`): it changed since the run".into()
            )
        );
        let got = encoded(&tar, &shards, &wanted("gone.tar", 0, &[(2, "k02.jpg")]));
        assert_eq!(
            got[&2],
            Err("shard gone.tar: shard not found (no such file)".into())
        );
        // A name the config does not list (a run folder edited, or from elsewhere) is not opened.
        let got = encoded(&tar, &shards, &wanted("../a.tar", 0, &[(1, "k01.jpg")]));
        assert_eq!(
            got[&1],
            Err("its shard `../a.tar` is not one of those the run's config names now".into())
        );
    }
}
