//! One module per family of commands.
pub mod bind;
pub mod inventory;
