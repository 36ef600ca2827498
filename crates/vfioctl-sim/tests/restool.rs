//! The restool stand-in with the host's `dpaa2` use cases: create then destroy leaves the MC and
//! the tree as they began, a refusal at every step rolls back, argv are checked.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::collections::BTreeMap;

use pretty_assertions::assert_eq;
use vfioctl_core::dpaa2::{GUEST_OBJECTS, Link};
use vfioctl_core::{FslMcName, Owner};
use vfioctl_host::HostRoot;
use vfioctl_host::journal::Journal;
use vfioctl_host::ops::dpaa2::{self, CreateRequest, Dpaa2Error, Restool};
use vfioctl_sim::restool::SimRestool;
use vfioctl_sim::topology::ten64_dpaa2;
use vfioctl_sim::{Entry, SimTree, snapshot};

fn name(s: &str) -> FslMcName {
    s.parse().unwrap()
}

fn request() -> CreateRequest {
    CreateRequest {
        owner: Owner::Vm("web".to_owned()),
        root: name("dprc.1"),
        link: Some(Link::Dpmac(name("dpmac.2"))),
    }
}

/// The tree without vfioctl's own state directory (the journal stays, emptied).
fn state(tree: &SimTree) -> BTreeMap<String, Entry> {
    let mut s = snapshot(tree.root()).unwrap().0;
    s.retain(|path, _| path != "run" && !path.starts_with("run/"));
    s
}

fn host(tree: &SimTree) -> HostRoot {
    HostRoot::open(tree.root()).unwrap()
}

#[test]
fn create_then_destroy_leaves_the_mc_and_tree_as_they_began() {
    let tree = ten64_dpaa2().build_temp().unwrap();
    let before = state(&tree);
    let restool = SimRestool::new(tree.root());
    let record = dpaa2::create(&host(&tree), &restool, &request()).unwrap();
    let made = record.made.container.clone().unwrap();
    assert_eq!(made, name("dprc.3"));
    assert_eq!(record.made.assigned.len(), GUEST_OBJECTS.len());
    // The new container shows up under the host's (its driver scanned it), alone and unbound.
    assert!(tree.root().join("sys/bus/fsl-mc/devices/dprc.3").exists());
    assert!(
        !tree
            .root()
            .join("sys/bus/fsl-mc/devices/dprc.3/driver")
            .exists()
    );
    let info = restool
        .run(&["dprc".into(), "info".into(), "dprc.3".into()])
        .unwrap();
    assert!(info.contains("DPRC_CFG_OPT_IRQ_CFG_ALLOWED"), "{info}");
    assert_eq!(Journal::load(&host(&tree)).unwrap().dpaa2, vec![record]);

    dpaa2::destroy(&host(&tree), &restool, &made).unwrap();
    assert_eq!(state(&tree), before);
    assert!(Journal::load(&host(&tree)).unwrap().dpaa2.is_empty());
}

#[test]
fn a_refusal_at_every_create_step_rolls_back() {
    let steps = dpaa2::create_plan(&request()).len();
    for n in 0..steps {
        let tree = ten64_dpaa2().build_temp().unwrap();
        let before = state(&tree);
        let restool = SimRestool::failing_at(tree.root(), n);
        let err = dpaa2::create(&host(&tree), &restool, &request()).unwrap_err();
        let Dpaa2Error::CreateFailed { source, left } = &err else {
            panic!("step {n}: {err}");
        };
        assert!(left.is_none(), "step {n}: {left:?}");
        assert!(source.to_string().contains("No free objects"), "{source}");
        assert_eq!(state(&tree), before, "step {n}");
        assert!(Journal::load(&host(&tree)).unwrap().dpaa2.is_empty());
        // Rollback ran exactly the teardown of what the n steps before had made.
        assert!(restool.log().len() > n);
    }
}

#[test]
fn a_container_in_use_is_not_destroyed_and_stays_journaled() {
    let tree = ten64_dpaa2().build_temp().unwrap();
    let restool = SimRestool::new(tree.root());
    let made = dpaa2::create(&host(&tree), &restool, &request())
        .unwrap()
        .made
        .container
        .unwrap();
    let kernel = vfioctl_sim::SimKernel::open(tree.root()).unwrap();
    vfioctl_host::Kernel::load_module(&kernel, "vfio_fsl_mc").unwrap();
    vfioctl_host::Kernel::write_attr(
        &kernel,
        &tree
            .root()
            .join(format!("sys/bus/fsl-mc/devices/{made}/driver_override")),
        "vfio-fsl-mc",
    )
    .unwrap();
    vfioctl_host::Kernel::write_attr(
        &kernel,
        &tree.root().join("sys/bus/fsl-mc/drivers/vfio-fsl-mc/bind"),
        &made.to_string(),
    )
    .unwrap();
    let err = dpaa2::destroy(&host(&tree), &restool, &made).unwrap_err();
    assert!(matches!(err, Dpaa2Error::Teardown { .. }), "{err}");
    assert!(format!("{err:?}").contains("in use"), "{err:?}");
    let journal = Journal::load(&host(&tree)).unwrap();
    assert_eq!(journal.dpaa2.len(), 1, "what is left stays journaled");
}

#[test]
fn argv_off_restools_syntax_are_refused_before_the_mc_sees_them() {
    let tree = ten64_dpaa2().build_temp().unwrap();
    let before = state(&tree);
    let restool = SimRestool::new(tree.root());
    for bad in [
        "dprc create",
        "dprc create dprc.1 --options=DPRC_CFG_OPT_BOGUS",
        "dprc assign dprc.1 --object=dpni.0",
        "dprc assign dprc.1 --object=dpni.0 --target=dprc.2 --plugged=2",
        "dprc unassign dprc.1 --object=dpni.0 --target=dprc.2 --plugged=1",
        "dprc connect dprc.1 --endpoint1=dpni.0",
        "dprc assign dprc.1 --child=dprc.2 --object=dpni.0 --plugged=1",
        "dpni create dprc.1",
        "dpni destroy dpbp.0",
        "dprc destroy dprc.1",
        "dprc frobnicate dprc.1",
    ] {
        let argv: Vec<String> = bad.split(' ').map(str::to_owned).collect();
        assert!(restool.run(&argv).is_err(), "{bad} was taken");
    }
    assert_eq!(state(&tree), before);
}
