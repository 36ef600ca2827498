//! One module per family of commands.
pub mod bind;
pub mod check;
pub mod docs;
pub mod doctor;
pub mod hook;
pub mod inventory;
pub mod predict;
pub mod render;
pub mod vm;
