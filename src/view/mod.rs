//! View: reading a stored run back and drawing it.
//!
//! [`read`] answers questions from the tables with projection and pruning ([`conform`] brings
//! the columns of tables that other tools wrote back to layerwise's types), [`render`] draws
//! map grids as PNG, [`photos`] reads the input images again, [`plot`] builds the classic study's figures from both, [`recompute`]
//! computes again the maps a run did not keep for the images a figure shows. The atlas of a
//! whole run is built from them in [`crate::report`].

pub mod conform;
pub mod photos;
pub mod plot;
pub mod read;
pub mod recompute;
pub mod render;
