//! Call control: queues, agents, routing strategies, the B2BUA that bridges callers to
//! agents, and ring timing. It drives the SIP core (`crate::sip`) and the media relay
//! (`crate::media`), and hands finished call records to the store writer.

pub mod active;
pub mod agents;
pub mod claims;
pub mod cluster;
pub mod controller;
pub mod record;
pub mod routing;
pub mod survey;

pub use controller::{CallbackRefused, Control, Controller, RecordingRefused, SurveyRefused};
