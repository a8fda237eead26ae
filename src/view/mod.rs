//! View: reading a stored run back and drawing it.
//!
//! [`read`] answers questions from the tables with projection and pruning ([`conform`] brings
//! the columns of tables that other tools wrote back to layerwise's types), [`render`] draws
//! map grids as PNG, [`plot`] builds the classic study's figures from both, and [`report`]
//! writes a whole run as a static HTML site.

pub mod conform;
pub mod plot;
pub mod read;
pub mod render;
pub mod report;
