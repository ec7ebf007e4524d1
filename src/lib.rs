//! threering: a SIP call-center daemon. See `DESIGN.md` in the shared folder for the
//! architecture; `sip` is the protocol core and knows nothing about call centers.
pub mod sip;
