//! Input: where the images of a run come from, and how each becomes model input.
//!
//! [`listing`] finds the images of a folder or a list; [`preprocess`] decodes one image and
//! writes its slice of the input tensor.

pub mod listing;
pub mod preprocess;
