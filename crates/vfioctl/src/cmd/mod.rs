//! One module per family of commands.
pub mod bind;
pub mod check;
pub mod doctor;
pub mod inventory;
pub mod render;
