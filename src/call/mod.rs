//! Call control (being written).
pub mod record;
