//! Where a file or a folder is: a local path, or an object (a prefix) in an S3-compatible store,
//! `s3://bucket/key`, reached through the `object_store` crate with credentials, region and
//! endpoint from the usual `AWS_*` environment variables. Shards (input), a run's folder
//! (output) and the runs that `report` reads (view) are all given this way; this is the one
//! place the form is told apart and the bucket is opened.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::ObjectStore;

/// The scheme of an object store location.
const S3: &str = "s3://";

/// A local path, or an object store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local file or folder.
    Local(PathBuf),
    /// An object or a prefix, `s3://bucket/key`.
    Remote(String),
}

impl Location {
    /// A location as a config or the command line gives it: `s3://...`, or a path.
    pub fn of(path: &Path) -> Location {
        match path.to_str() {
            Some(url) if url.starts_with(S3) => Location::Remote(url.to_owned()),
            _ => Location::Local(path.to_owned()),
        }
    }

    /// A name from a config, relative names taken from `folder` (a URL is taken as it is).
    pub fn resolve(name: &str, folder: &Path) -> Location {
        if name.starts_with(S3) {
            Location::Remote(name.to_owned())
        } else {
            Location::Local(folder.join(name))
        }
    }

    /// Whether it is in an object store.
    pub fn is_remote(&self) -> bool {
        matches!(self, Location::Remote(_))
    }

    /// As a person gives it.
    pub fn display(&self) -> String {
        match self {
            Location::Local(path) => path.display().to_string(),
            Location::Remote(url) => url.clone(),
        }
    }
}

/// Whether a path as given names an object store rather than a local file or folder.
pub fn is_remote(path: &Path) -> bool {
    Location::of(path).is_remote()
}

/// A client for the bucket of `url` (`s3://bucket/key`), with credentials and endpoint from
/// the `AWS_*` environment variables, and the key the URL names in it.
pub fn s3_client(url: &str) -> Result<(Arc<dyn ObjectStore>, Key)> {
    let rest = url.strip_prefix(S3).unwrap_or_default();
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    let store = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .build()
        .with_context(|| {
            format!("cannot open {url} (credentials and endpoint come from AWS_* variables)")
        })?;
    Ok((Arc::new(store), Key::from(key)))
}

/// A runtime that drives object-store requests from synchronous code, on the calling thread.
pub fn client_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the object store client")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_paths_are_told_apart() {
        assert_eq!(
            Location::of(Path::new("s3://b/runs")),
            Location::Remote("s3://b/runs".into())
        );
        assert_eq!(
            Location::of(Path::new("out/s3:/x")),
            Location::Local("out/s3:/x".into())
        );
        assert_eq!(
            Location::resolve("shards/a.tar", Path::new("/data")),
            Location::Local("/data/shards/a.tar".into())
        );
        assert!(Location::resolve("s3://b/a.tar", Path::new("/data")).is_remote());
    }
}
