//! Shards in an object store (`s3://bucket/key`, the same client and `AWS_*` environment as
//! `output.dir = "s3://..."`): listing a prefix for globs, one sequential stream for a tar
//! shard, and ranged reads for a Parquet file (its footer, then only the column chunks a
//! run needs).

use std::io::Read;
use std::sync::Arc;

use anyhow::Result;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::location::{client_runtime, s3_client};

/// Ranged reads of a Parquet object fetch at least this much at a time.
const WINDOW: u64 = 1 << 20;

/// The URLs of every object under `prefix` (`s3://bucket/some/prefix/`).
pub fn list(prefix: &str) -> Result<Vec<String>> {
    let (store, key) = s3_client(prefix)?;
    let bucket_url = bucket_url(prefix);
    let runtime = client_runtime()?;
    let keys: Vec<Key> =
        runtime.block_on(store.list(Some(&key)).map_ok(|o| o.location).try_collect())?;
    Ok(keys
        .into_iter()
        .map(|k| format!("{bucket_url}/{k}"))
        .collect())
}

/// `s3://bucket` of a URL.
fn bucket_url(url: &str) -> String {
    let rest = url.strip_prefix("s3://").unwrap_or_default();
    format!("s3://{}", rest.split('/').next().unwrap_or(rest))
}

/// An object opened for reading: its size is known, its bytes are fetched when read.
#[derive(Clone)]
pub struct Object(Arc<Inner>);

struct Inner {
    store: Arc<dyn ObjectStore>,
    key: Key,
    size: u64,
    runtime: tokio::runtime::Runtime,
}

impl Object {
    /// Opens `url`; the error is a reason for an `images` row (`not found`, ...).
    pub fn open(url: &str) -> Result<Object, String> {
        let (store, key) = s3_client(url).map_err(|e| format!("unreadable: {e:#}"))?;
        let runtime = client_runtime().map_err(|e| format!("{e:#}"))?;
        let size = match runtime.block_on(store.head(&key)) {
            Ok(meta) => meta.size,
            Err(object_store::Error::NotFound { .. }) => {
                return Err("shard not found (no such object)".into())
            }
            Err(e) => return Err(format!("unreadable: {e}")),
        };
        Ok(Object(Arc::new(Inner {
            store,
            key,
            size,
            runtime,
        })))
    }

    /// The object's size in bytes.
    pub fn size(&self) -> u64 {
        self.0.size
    }

    /// The whole object as one sequential stream (one request).
    pub fn stream(&self) -> Result<impl Read + Send, String> {
        let inner = &self.0;
        let got = inner
            .runtime
            .block_on(inner.store.get(&inner.key))
            .map_err(|e| format!("unreadable: {e}"))?;
        Ok(Stream {
            object: self.clone(),
            stream: got.into_stream(),
            chunk: Bytes::new(),
        })
    }

    fn range(&self, start: u64, end: u64) -> std::io::Result<Bytes> {
        let inner = &self.0;
        inner
            .runtime
            .block_on(inner.store.get_range(&inner.key, start..end))
            .map_err(std::io::Error::other)
    }
}

/// An object's bytes in order, fetched as they are read.
struct Stream {
    object: Object,
    stream: BoxStream<'static, object_store::Result<Bytes>>,
    chunk: Bytes,
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.object.0.runtime.block_on(self.stream.next()) {
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

impl parquet::file::reader::Length for Object {
    fn len(&self) -> u64 {
        self.0.size
    }
}

impl parquet::file::reader::ChunkReader for Object {
    type T = Window;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Window> {
        Ok(Window {
            object: self.clone(),
            position: start,
            buffer: Bytes::new(),
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let end = start.saturating_add(length as u64).min(self.0.size);
        self.range(start, end)
            .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))
    }
}

/// A reader from an offset of an object, fetching `WINDOW` bytes at a time.
pub struct Window {
    object: Object,
    position: u64,
    buffer: Bytes,
}

impl Read for Window {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.buffer.is_empty() {
            let end = self.position.saturating_add(WINDOW).min(self.object.0.size);
            if self.position >= end {
                return Ok(0);
            }
            self.buffer = self.object.range(self.position, end)?;
            self.position = end;
        }
        let n = buf.len().min(self.buffer.len());
        buf[..n].copy_from_slice(&self.buffer.split_to(n));
        Ok(n)
    }
}
