//! WebDataset tar shards, read in one sequential pass: consecutive members that share a key
//! (the member name up to the first `.` of its last component, as the `webdataset` package
//! splits it) form one sample, and the rest of the name is the member's extension. Only the
//! members a run needs are read into memory; nothing is ever written to disk, so a member
//! named `../x.jpg` is only a name.

use std::io::Read;
use std::sync::Arc;

use crate::error::PlanError;
use crate::input::remote::Object;
use crate::input::shards::open_local;
use crate::input::stream::Emitter;
use crate::input::Content;
use crate::input::{Format, ShardFormat, ShardReader};
use crate::location::Location;
use crate::plan::ShardsSpec;

/// The image extensions tried, in order, when `input.image_field` is not set.
pub const DEFAULT_IMAGE_FIELDS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];

/// A member larger than this is not read (an image's encoded bytes are far smaller).
pub const MAX_MEMBER_BYTES: u64 = 256 << 20;

/// The reason for a shard whose first block is not a tar header.
const NOT_A_TAR: &str = "not a tar file: its first block is no tar header (is it another kind of \
                         file, or compressed?)";

/// Reads of a local shard go through a buffer of this size.
const READ_BUFFER: usize = 1 << 20;

/// Which members of a sample hold its image and its label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    /// Image extensions (lower case), the first present taken.
    image: Vec<String>,
    /// Where the label is, if anywhere.
    label: Option<LabelField>,
}

/// Where a WebDataset sample's label is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelField {
    /// The text of the member with this extension.
    Member(String),
    /// A field of the `.json` member.
    Json(String),
}

impl Default for Fields {
    /// The image extensions of [`DEFAULT_IMAGE_FIELDS`], no label.
    fn default() -> Fields {
        Fields {
            image: DEFAULT_IMAGE_FIELDS.map(String::from).to_vec(),
            label: None,
        }
    }
}

/// The WebDataset format: `input.webdataset`.
pub struct WebDataset;

impl ShardFormat for WebDataset {
    fn key(&self) -> &'static str {
        "webdataset"
    }

    fn reader(&self, spec: &ShardsSpec) -> Result<Format, PlanError> {
        Ok(Arc::new(Fields::new(spec)?))
    }
}

impl ShardReader for Fields {
    fn read(&self, location: &Location, emit: &mut Emitter) {
        read_location(location, self, emit)
    }
}

impl Fields {
    /// The fields a shards spec names (`image_field`: member extensions, with or without the
    /// dot, in any case; `label_field`), or the defaults. A sample's key is its members' name,
    /// so `key_field` is refused.
    pub fn new(spec: &ShardsSpec) -> Result<Fields, PlanError> {
        if spec.key_field.is_some() {
            return Err(PlanError::invalid(
                "input.key_field",
                "applies to parquet inputs only; a WebDataset sample's key is its members' name \
                 without the extension",
            ));
        }
        let image = match spec.image_field.is_empty() {
            true => Fields::default().image,
            false => spec.image_field.iter().map(|e| extension(e)).collect(),
        };
        let label = match spec.label_field.as_deref() {
            Some(field) => Some(match field.strip_prefix("json:") {
                Some("") => {
                    return Err(PlanError::invalid(
                        "input.label_field",
                        "is `json:` without a field; write e.g. \"json:label\"",
                    ))
                }
                Some(name) => LabelField::Json(name.to_owned()),
                None => LabelField::Member(extension(field)),
            }),
            None => None,
        };
        Ok(Fields { image, label })
    }

    /// Whether a member with this extension is read.
    fn wants(&self, extension: &str) -> bool {
        self.image.iter().any(|e| e == extension)
            || match &self.label {
                Some(LabelField::Member(e)) => e == extension,
                Some(LabelField::Json(_)) => extension == "json",
                None => false,
            }
    }
}

/// A member extension as configured, without the dot and in lower case.
fn extension(field: &str) -> String {
    field.trim_start_matches('.').to_ascii_lowercase()
}

/// Reads the tar shard at `location` and emits its samples (or the shard's error row).
pub fn read_location(location: &Location, fields: &Fields, emit: &mut Emitter) {
    match open(location) {
        Ok(reader) => read_from(reader, fields, emit),
        Err(reason) => emit.shard_error(reason),
    }
}

/// Opens a shard for one sequential pass; the error is its row's reason.
fn open(location: &Location) -> Result<Box<dyn Read + Send>, String> {
    match location {
        Location::Local(path) => Ok(Box::new(std::io::BufReader::with_capacity(
            READ_BUFFER,
            open_local(path)?,
        ))),
        Location::Remote(url) => Ok(Box::new(Object::open(url)?.stream()?)),
    }
}

/// Counts the bytes read through it.
struct Counted<R> {
    inner: R,
    bytes: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

/// The members of one sample read so far.
struct Group {
    key: String,
    /// The members read.
    members: Vec<Member>,
    /// Extensions of every member, read or not.
    extensions: Vec<String>,
}

/// A member read.
struct Member {
    extension: String,
    name: String,
    /// Its bytes, or why they were not read.
    data: Result<Vec<u8>, String>,
}

/// Reads a tar shard in one pass and emits its samples: every sample one, and the sample a
/// truncation cuts (or the shard, when it is no tar at all) one with its reason.
pub fn read_from(reader: Box<dyn Read + Send>, fields: &Fields, emit: &mut Emitter) {
    let mut archive = tar::Archive::new(Counted {
        inner: reader,
        bytes: 0,
    });
    let entries = match archive.entries() {
        Ok(entries) => entries,
        Err(_) => return emit.shard_error(NOT_A_TAR.into()),
    };
    let mut group: Option<Group> = None;
    let mut members = 0u64;
    for entry in entries {
        let mut entry = match entry {
            Ok(entry) => entry,
            Err(_) if members == 0 => return emit.shard_error(NOT_A_TAR.into()),
            Err(e) if e.kind() == std::io::ErrorKind::Other => {
                let reason = truncated("a member's header is cut short");
                return stopped(group, reason, None, emit);
            }
            Err(e) => return stopped(group, format!("reading stopped: {e}"), None, emit),
        };
        members += 1;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = crate::input::listing::escape_bytes(&entry.path_bytes());
        let (key, extension) = split_name(&name);
        if group.as_ref().is_some_and(|g| g.key != key) && !finish(group.take(), fields, emit) {
            return;
        }
        let g = group.get_or_insert_with(|| Group {
            key: key.to_owned(),
            members: Vec::new(),
            extensions: Vec::new(),
        });
        g.extensions.push(extension.clone());
        // The group's sample is the next one emitted; one not handed on is not read.
        if !fields.wants(&extension) || !emit.wants(emit.sent()) {
            continue;
        }
        let size = entry.size();
        let data = if size > MAX_MEMBER_BYTES {
            Err(format!(
                "too large: the member holds {size} bytes, over the {} MiB a member may have",
                MAX_MEMBER_BYTES >> 20
            ))
        } else {
            let mut data = Vec::with_capacity(size as usize);
            let read = entry.read_to_end(&mut data);
            let image = fields.image.contains(&extension).then(|| name.clone());
            if let Err(e) = read {
                let reason = format!("reading stopped in its member {name}: {e}");
                return stopped(group, reason, image, emit);
            }
            if (data.len() as u64) < size {
                let why = format!(
                    "its member {name} is cut short ({} of {size} bytes)",
                    data.len()
                );
                return stopped(group, truncated(&why), image, emit);
            }
            Ok(data)
        };
        g.members.push(Member {
            extension,
            name,
            data,
        });
    }
    if members == 0 && archive.into_inner().bytes == 0 {
        return emit.shard_error("empty file (0 bytes), not a tar shard".into());
    }
    finish(group, fields, emit);
}

/// The reason for the sample a truncated tar cuts.
fn truncated(why: &str) -> String {
    format!(
        "the shard ends early (truncated tar: {why}); was the copy interrupted? Samples \
         before it are kept"
    )
}

/// Reading the shard stopped: the sample being read is one error row, named by its image
/// member when that was the one cut (or the shard's row, when no sample was under way).
fn stopped(group: Option<Group>, reason: String, image: Option<String>, emit: &mut Emitter) {
    match group {
        Some(g) => {
            let path = image.unwrap_or_else(|| g.key.clone());
            emit.emit(path, Some(g.key), None, Content::Failed(reason));
        }
        None => emit.shard_error(reason),
    }
}

/// Sends a finished sample: its image member's bytes (or why there are none) and its label.
fn finish(group: Option<Group>, fields: &Fields, emit: &mut Emitter) -> bool {
    let Some(mut g) = group else {
        return true;
    };
    let label = label(&g, fields);
    let image = fields
        .image
        .iter()
        .find_map(|e| g.members.iter().position(|m| &m.extension == e));
    let (path, content) = match image.map(|i| g.members.swap_remove(i)) {
        Some(member) => (
            member.name,
            match member.data {
                Ok(bytes) => Content::Bytes(bytes),
                Err(reason) => Content::Failed(reason),
            },
        ),
        None => (
            g.key.clone(),
            Content::Failed(format!(
                "no image member: the sample has {}, none of {}; set input.image_field to the \
                 extension that holds its image",
                listed(&g.extensions),
                listed(&fields.image)
            )),
        ),
    };
    emit.emit(path, Some(g.key), label, content)
}

/// `.a, .b` for a person.
fn listed(extensions: &[String]) -> String {
    let shown: Vec<String> = extensions
        .iter()
        .map(|e| match e.is_empty() {
            true => "a member without extension".to_owned(),
            false => format!(".{e}"),
        })
        .collect();
    shown.join(", ")
}

/// The label of a sample, from its text member or a field of its `.json` member.
fn label(g: &Group, fields: &Fields) -> Option<String> {
    let member = |extension: &str| {
        let found = g.members.iter().find(|m| m.extension == extension)?;
        found.data.as_deref().ok()
    };
    match fields.label.as_ref()? {
        LabelField::Member(extension) => {
            let text = String::from_utf8_lossy(member(extension)?);
            Some(text.trim().to_owned())
        }
        LabelField::Json(field) => {
            let value: serde_json::Value = serde_json::from_slice(member("json")?).ok()?;
            match value.get(field)? {
                serde_json::Value::Null => None,
                serde_json::Value::String(text) => Some(text.clone()),
                other => Some(other.to_string()),
            }
        }
    }
}

/// A member name's sample key and extension (lower case): `dir/abc.seg.jpg` is key `dir/abc`,
/// extension `seg.jpg`.
pub fn split_name(name: &str) -> (&str, String) {
    let base = name.rfind('/').map_or(0, |i| i + 1);
    match name[base..].find('.') {
        Some(dot) => (
            &name[..base + dot],
            name[base + dot + 1..].to_ascii_lowercase(),
        ),
        None => (name, String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_at_the_first_dot_of_the_last_component() {
        assert_eq!(split_name("000001.jpg"), ("000001", "jpg".into()));
        assert_eq!(split_name("a.b/c.seg.PNG"), ("a.b/c", "seg.png".into()));
        assert_eq!(split_name("../../etc/x.jpg"), ("../../etc/x", "jpg".into()));
        assert_eq!(split_name("README"), ("README", String::new()));
    }
}
