//! The input images of a run's images, read again for its pictures: to draw under their maps
//! (brought to the map's size as the run's preprocessing did) and to run again when a map the
//! run did not keep is computed ([`crate::view::recompute`]).

use std::collections::HashMap;
use std::path::Path;

use fast_image_resize::Resizer;
use image::RgbImage;

use crate::input::lookup::{self, Wanted};
use crate::input::preprocess;
use crate::input::Listing;
use crate::plan::{self, InputType, Overrides, Preprocess};
use crate::view::read::{StoredImage, StoredRun};

/// An image's encoded bytes, and the name they were read under.
pub type Encoded<'a> = (std::borrow::Cow<'a, [u8]>, String);

/// The input images of some of a run's images, to draw under their maps: a folder's or list's
/// files read when drawn, a shard input's samples read again from their shards beforehand
/// ([`lookup::encoded`]: one pass per shard that holds any).
pub struct Photos<'a> {
    run: &'a StoredRun,
    /// The encoded images of the samples in shards, or why each cannot be had.
    in_shards: HashMap<u64, Result<Vec<u8>, String>>,
}

impl<'a> Photos<'a> {
    /// Gets ready to draw `images` of `run`, reading those inside shards.
    pub fn read<'i>(
        run: &'a StoredRun,
        images: impl IntoIterator<Item = &'i StoredImage>,
    ) -> Photos<'a> {
        let wanted: Vec<Wanted> = images
            .into_iter()
            .filter_map(|i| {
                Some(Wanted {
                    image_id: i.image_id,
                    source: i.source.as_deref()?,
                    path: &i.path,
                })
            })
            .collect();
        let mut in_shards = HashMap::new();
        if !wanted.is_empty() {
            let listed = plan::input_spec(&run.config, &Overrides::default())
                .map_err(anyhow::Error::from)
                .and_then(|spec| crate::input::list(&spec));
            match listed {
                Ok(Listing::Shards { format, shards }) => {
                    in_shards = lookup::encoded(&format, &shards, &wanted)
                }
                Ok(Listing::Files(_)) => {
                    tracing::warn!("the run's config names no shards now; drawing maps alone")
                }
                Err(e) => {
                    tracing::warn!("cannot list the run's shards ({e:#}); drawing maps alone")
                }
            }
        }
        Photos { run, in_shards }
    }

    /// The input image of `image`, brought to `size` as the run's preprocessing did; None
    /// (with a warning) when it cannot be read or decoded any more.
    pub fn underlay(
        &self,
        image: &StoredImage,
        size: (u32, u32),
        resizer: &mut Resizer,
    ) -> Option<RgbImage> {
        let (bytes, named) = match self.encoded(image)? {
            Ok(found) => found,
            Err((what, why)) => return warned(&what, &why),
        };
        let decoded = match preprocess::decode_at_least(
            &bytes,
            size.0.max(size.1),
            crate::config::DEFAULT_MAX_PIXELS,
        ) {
            Ok((decoded, _)) => decoded,
            Err(e) => return warned(&named, &e),
        };
        let fit = Preprocess {
            input_type: InputType::Float32,
            height: size.1,
            width: size.0,
            resize: self.run.config.preprocess.resize,
            layout: self.run.config.preprocess.layout,
            channel_order: self.run.config.preprocess.channel_order,
            scale: 1.0,
            mean: [0.0; 3],
            std: [1.0; 3],
            max_pixels: crate::config::DEFAULT_MAX_PIXELS,
        };
        fit.resize(decoded, resizer).ok()
    }

    /// The encoded bytes of `image` and the name they were read under, or what and why they
    /// cannot be had: a shard input's from the shards read beforehand (`None` when `image` was
    /// not asked for), a folder's file read now (only inside the run's input folder).
    pub fn encoded(&self, image: &StoredImage) -> Option<Result<Encoded<'_>, (String, String)>> {
        let failed = |what: &str, why: &str| Some(Err((what.to_owned(), why.to_owned())));
        match (&image.source, self.run.config.input.files_root()) {
            (Some(_), _) => match self.in_shards.get(&image.image_id)? {
                Ok(bytes) => Some(Ok((std::borrow::Cow::Borrowed(bytes), image.path.clone()))),
                Err(e) => failed(&image.path, e),
            },
            (None, Some(root)) => {
                // The listing writes paths inside the root; a table that says otherwise is not
                // followed out of it.
                let inside = Path::new(&image.path)
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)));
                if !inside {
                    return failed(&image.path, "not a path inside the run's input folder");
                }
                let path = root.join(&image.path);
                let named = path.display().to_string();
                match preprocess::read_file(&path) {
                    Ok(bytes) => Some(Ok((std::borrow::Cow::Owned(bytes), named))),
                    Err(e) => failed(&named, &e),
                }
            }
            (None, None) => failed(&image.path, "the run's config names no folder of images"),
        }
    }
}

/// Warns that `what` is drawn without its image, and why.
fn warned(what: &str, why: &str) -> Option<RgbImage> {
    tracing::warn!("{what}: {why}; drawing its map alone");
    None
}
