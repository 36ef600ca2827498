//! A canonical, comparable description of a whole tree, so tests can assert "the tree ends exactly
//! as it began".

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use crate::state::SIM_DIR;

/// One entry of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A directory.
    Dir,
    /// A regular file and its content.
    File(Vec<u8>),
    /// A symlink and its target, as written.
    Link(String),
}

/// Every path under a root (relative, `/`-separated) with what it is. Excludes the simulator's
/// counters and lock under `.vfioctl-sim/`, but keeps the marker (`kernel.json`, minus the injected
/// faults and crash point), whose dynamic IDs and module states are kernel state a test wants
/// compared too.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot(pub BTreeMap<String, Entry>);

impl Snapshot {
    /// Paths whose entries differ between `self` and `other` (present in either).
    pub fn diff(&self, other: &Snapshot) -> Vec<String> {
        let mut keys: Vec<&String> = self.0.keys().chain(other.0.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .filter(|k| self.0.get(*k) != other.0.get(*k))
            .cloned()
            .collect()
    }
}

/// Takes a snapshot of the tree under `root`.
pub fn snapshot(root: &Path) -> io::Result<Snapshot> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out)?;
    Ok(Snapshot(out))
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .map_err(|e| io::Error::other(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        if let Some(name) = rel.strip_prefix(&format!("{SIM_DIR}/"))
            && name != "kernel.json"
        {
            continue;
        }
        let ty = entry.file_type()?;
        if ty.is_symlink() {
            let target = fs::read_link(&path)?.to_string_lossy().into_owned();
            out.insert(rel, Entry::Link(target));
        } else if ty.is_dir() {
            out.insert(rel, Entry::Dir);
            walk(root, &path, out)?;
        } else if rel == crate::state::MARKER {
            out.insert(rel, Entry::File(marker_without_plan(root)?));
        } else {
            out.insert(rel, Entry::File(fs::read(&path)?));
        }
    }
    Ok(())
}

/// The marker without the test plan (faults, crash point): those are how a test drives the
/// kernel, not kernel state, and changing them must not count as changing the tree.
fn marker_without_plan(root: &Path) -> io::Result<Vec<u8>> {
    let mut state = crate::state::KernelState::load(root)?;
    state.faults.clear();
    state.crash_after_write = None;
    serde_json::to_vec_pretty(&state).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
