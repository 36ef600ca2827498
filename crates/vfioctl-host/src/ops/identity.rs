//! Who QEMU runs as: the VM's `user`, its primary group and its supplementary groups from the
//! root's `/etc/passwd` and `/etc/group`, taken on in the child between fork and exec.

use std::os::unix::process::CommandExt;
use std::process::Command;

use super::{OpError, lookup_user};
use crate::HostRoot;

/// A user's ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
    /// Every group the user is in (primary first), as `initgroups` would set them.
    pub groups: Vec<u32>,
}

/// The credentials of `user` (a name or a uid) under the root.
pub fn credentials(root: &HostRoot, user: &str) -> Result<Credentials, OpError> {
    let (uid, gid) = lookup_user(root, user)?;
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap_or_default();
    let name = passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_owned())
        })
        .next()
        .unwrap_or_else(|| user.to_owned());
    let group = std::fs::read_to_string(root.join("etc/group")).unwrap_or_default();
    let mut groups = vec![gid];
    for line in group.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if let [_, _, id, members] = fields.as_slice()
            && members.split(',').any(|m| m.trim() == name)
            && let Ok(id) = id.parse::<u32>()
            && !groups.contains(&id)
        {
            groups.push(id);
        }
    }
    Ok(Credentials { uid, gid, groups })
}

/// Makes `command` run as `credentials`: groups, then gid, then uid (each needs the one before
/// to still be root). std's own `uid`/`gid` cannot be combined with supplementary groups on
/// stable Rust, so all three are set here.
#[expect(
    unsafe_code,
    reason = "pre_exec is the only place to drop privileges in the child"
)]
pub fn run_as(command: &mut Command, credentials: &Credentials) {
    use rustix::process::{Gid, Uid};
    let groups: Vec<Gid> = credentials
        .groups
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    let gid = Gid::from_raw(credentials.gid);
    let uid = Uid::from_raw(credentials.uid);
    // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
    // work is allowed: it allocates nothing (the ids were prepared above) and makes three raw
    // system calls, each per-thread, which is per-process in a child with a single thread.
    unsafe {
        command.pre_exec(move || {
            rustix::thread::set_thread_groups(&groups)?;
            rustix::thread::set_thread_gid(gid)?;
            rustix::thread::set_thread_uid(uid)?;
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_come_from_the_roots_group_file() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("etc")).unwrap();
        std::fs::create_dir_all(tmp.path().join("sys/bus/pci")).unwrap();
        std::fs::write(
            tmp.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nqemu:x:64055:64055::/:/bin/false\n",
        )
        .unwrap();
        std::fs::write(
            tmp.path().join("etc/group"),
            "kvm:x:992:qemu,libvirt\nqemu:x:64055:\naudio:x:29:pulse\nrender:x:989:qemu\n",
        )
        .unwrap();
        let root = HostRoot::open(tmp.path()).unwrap();
        let c = credentials(&root, "64055").unwrap();
        assert_eq!((c.uid, c.gid), (64055, 64055));
        assert_eq!(c.groups, [64055, 992, 989]);
    }
}
