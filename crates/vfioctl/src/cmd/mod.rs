//! One module per family of commands.
pub(crate) mod bind;
pub(crate) mod boot;
pub(crate) mod check;
pub(crate) mod device_plugin;
pub(crate) mod docs;
pub(crate) mod doctor;
pub(crate) mod dpaa2;
pub(crate) mod export;
pub(crate) mod hook;
pub(crate) mod inventory;
pub(crate) mod manpage;
pub(crate) mod predict;
pub(crate) mod render;
pub(crate) mod select;
pub(crate) mod vf;
pub(crate) mod vm;
