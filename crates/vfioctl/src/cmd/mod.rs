//! One module per family of commands.
pub mod inventory;
