//! Where a run's files live: a local folder, or a prefix in an S3-compatible object store
//! (`s3://bucket/prefix`, through the `object_store` crate, with credentials and endpoint from
//! the usual `AWS_*` environment variables). Part files are written locally first and published
//! whole: renamed into place in a folder, uploaded as whole objects to a bucket.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use futures::TryStreamExt;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};

use crate::location::{client_runtime, s3_client, Location};

/// Uploads go in pieces of this size.
const UPLOAD_CHUNK: usize = 16 << 20;

/// A run's location.
pub enum Store {
    /// A local folder.
    Local(PathBuf),
    /// A prefix in an object store.
    Remote(Remote),
}

/// A prefix in an object store, with the runtime that drives its requests.
pub struct Remote {
    url: String,
    store: Arc<dyn ObjectStore>,
    prefix: Key,
    runtime: tokio::runtime::Runtime,
}

impl Store {
    /// Opens a location: `s3://bucket/prefix`, or a local folder.
    pub fn open(location: &Location) -> Result<Store> {
        let url = match location {
            Location::Local(dir) => return Ok(Store::Local(dir.clone())),
            Location::Remote(url) => url.trim_end_matches('/').to_owned(),
        };
        let (store, prefix) = s3_client(&url)?;
        Ok(Store::Remote(Remote {
            store,
            prefix,
            runtime: client_runtime()?,
            url,
        }))
    }

    /// The location, as a person gives it.
    pub fn display(&self) -> String {
        match self {
            Store::Local(dir) => dir.display().to_string(),
            Store::Remote(r) => r.url.clone(),
        }
    }

    /// A file's bytes, or `None` when it does not exist.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        match self {
            Store::Local(dir) => match std::fs::read(dir.join(name)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => {
                    Err(e).with_context(|| format!("cannot read {}", dir.join(name).display()))
                }
            },
            Store::Remote(r) => r.block(async {
                match r.store.get(&r.key(name)).await {
                    Ok(got) => Ok(Some(got.bytes().await?.to_vec())),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e.into()),
                }
            }),
        }
    }

    /// Copies a file of the location to the local `path`, a piece at a time (a part file may
    /// be larger than memory); `false` when it does not exist.
    pub fn download(&self, name: &str, path: &Path) -> Result<bool> {
        let failed = || {
            format!(
                "cannot copy {}/{name} to {}",
                self.display(),
                path.display()
            )
        };
        match self {
            Store::Local(dir) => match std::fs::copy(dir.join(name), path) {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e).with_context(failed),
            },
            Store::Remote(r) => r
                .block(async {
                    let mut pieces = match r.store.get(&r.key(name)).await {
                        Ok(got) => got.into_stream(),
                        Err(object_store::Error::NotFound { .. }) => return Ok(false),
                        Err(e) => return Err(e.into()),
                    };
                    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
                    while let Some(piece) = pieces.try_next().await? {
                        std::io::Write::write_all(&mut file, &piece)?;
                    }
                    std::io::Write::flush(&mut file)?;
                    Ok(true)
                })
                .with_context(failed),
        }
    }

    /// Writes a small file whole, replacing it (atomically in a folder).
    pub fn write(&self, name: &str, bytes: Vec<u8>) -> Result<()> {
        match self {
            Store::Local(dir) => {
                let path = dir.join(name);
                let temporary = temporary_next_to(&path);
                std::fs::write(&temporary, bytes)
                    .and_then(|_| std::fs::rename(&temporary, &path))
                    .with_context(|| format!("cannot write {}", path.display()))
            }
            Store::Remote(r) => r.block(async {
                r.store.put(&r.key(name), PutPayload::from(bytes)).await?;
                Ok(())
            }),
        }
    }

    /// Writes a small file only if it does not exist yet; `false` when it already did.
    pub fn create(&self, name: &str, bytes: Vec<u8>) -> Result<bool> {
        match self {
            Store::Local(dir) => {
                let path = dir.join(name);
                let temporary = temporary_next_to(&path);
                std::fs::write(&temporary, bytes)
                    .with_context(|| format!("cannot write {}", temporary.display()))?;
                let linked = std::fs::hard_link(&temporary, &path);
                std::fs::remove_file(&temporary)?;
                match linked {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                    Err(e) => Err(e).with_context(|| format!("cannot write {}", path.display())),
                }
            }
            Store::Remote(r) => r.block(async {
                let options = PutOptions {
                    mode: PutMode::Create,
                    ..Default::default()
                };
                match r
                    .store
                    .put_opts(&r.key(name), PutPayload::from(bytes), options)
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
                    Err(e) => Err(e.into()),
                }
            }),
        }
    }

    /// The names of the files in a folder of the location (not recursive).
    pub fn list(&self, folder: &str) -> Result<Vec<String>> {
        match self {
            Store::Local(dir) => {
                let path = dir.join(folder);
                match std::fs::read_dir(&path) {
                    Ok(entries) => Ok(entries
                        .filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
                    Err(e) => Err(e).with_context(|| format!("cannot list {}", path.display())),
                }
            }
            Store::Remote(r) => r.block(async {
                let listed = r.store.list_with_delimiter(Some(&r.key(folder))).await?;
                Ok(listed
                    .objects
                    .into_iter()
                    .filter_map(|o| o.location.filename().map(String::from))
                    .collect())
            }),
        }
    }

    /// Moves a finished local file to `name` in the location: a rename in a folder, a whole
    /// object (uploaded in pieces) in a bucket, after which the local file is removed.
    pub fn publish(&self, local: &Path, name: &str) -> Result<()> {
        match self {
            Store::Local(dir) => {
                let path = dir.join(name);
                std::fs::rename(local, &path).with_context(|| {
                    format!("cannot rename {} to {}", local.display(), path.display())
                })
            }
            Store::Remote(r) => {
                let mut file = std::fs::File::open(local)
                    .with_context(|| format!("cannot read {}", local.display()))?;
                r.block(async {
                    let upload = r.store.put_multipart(&r.key(name)).await?;
                    let mut writer = WriteMultipart::new_with_chunk_size(upload, UPLOAD_CHUNK);
                    let mut buffer = vec![0; UPLOAD_CHUNK];
                    loop {
                        let n = file.read(&mut buffer)?;
                        if n == 0 {
                            break;
                        }
                        writer.wait_for_capacity(4).await?;
                        writer.write(&buffer[..n]);
                    }
                    writer.finish().await?;
                    Ok(())
                })
                .with_context(|| {
                    format!("cannot upload {} to {}/{name}", local.display(), r.url)
                })?;
                std::fs::remove_file(local)
                    .with_context(|| format!("cannot remove {}", local.display()))
            }
        }
    }

    /// Removes every file under the location (for `--overwrite`).
    pub fn clear(&self, names: &[&str]) -> Result<()> {
        match self {
            Store::Local(dir) => {
                for p in names.iter().map(|n| dir.join(n)).filter(|p| p.exists()) {
                    if p.is_dir() {
                        std::fs::remove_dir_all(&p)
                    } else {
                        std::fs::remove_file(&p)
                    }
                    .with_context(|| format!("cannot remove {}", p.display()))?;
                }
                Ok(())
            }
            Store::Remote(r) => r.block(async {
                let keys: Vec<_> = r
                    .store
                    .list(Some(&r.prefix))
                    .map_ok(|o| o.location)
                    .try_collect()
                    .await?;
                for key in keys {
                    r.store.delete(&key).await?;
                }
                Ok(())
            }),
        }
    }
}

impl Remote {
    fn key(&self, name: &str) -> Key {
        name.split('/')
            .filter(|p| !p.is_empty())
            .fold(self.prefix.clone(), |k, p| k.join(p))
    }

    fn block<T>(&self, work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        self.runtime.block_on(work)
    }
}

/// A temporary name beside `path` that no other process uses.
fn temporary_next_to(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}
