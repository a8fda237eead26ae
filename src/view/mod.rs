//! View: reading a stored run back and drawing it.
//!
//! [`read`] answers questions from the tables with projection and pruning, [`render`] draws
//! map grids as PNG, and [`plot`] builds the classic study's figures from both.

pub mod plot;
pub mod read;
pub mod render;
