use super::*;

fn n(s: &str) -> FslMcName {
    s.parse().unwrap()
}

#[test]
fn create_argv_follow_restools_syntax() {
    let steps = create_steps(&n("dprc.1"), Some(&Link::Dpmac(n("dpmac.2"))));
    let mut made = Made::default();
    let first = steps[0].argv(&made);
    assert_eq!(first[..3], ["dprc", "create", "dprc.1"]);
    assert!(first[3].contains("DPRC_CFG_OPT_IRQ_CFG_ALLOWED"));
    made.container = Some(n("dprc.3"));
    made.objects.push(n("dpni.4"));
    let assign = steps
        .iter()
        .find(|s| matches!(s, Step::Assign { .. }))
        .unwrap();
    assert_eq!(
        assign.argv(&made),
        [
            "dprc",
            "assign",
            "dprc.1",
            "--object=dpni.4",
            "--target=dprc.3",
            "--plugged=1"
        ]
    );
    assert_eq!(
        steps.last().unwrap().argv(&made),
        [
            "dprc",
            "connect",
            "dprc.1",
            "--endpoint1=dpni.4",
            "--endpoint2=dpmac.2"
        ]
    );
    assert_eq!(steps.len(), 1 + 2 * GUEST_OBJECTS.len() + 1);
}

#[test]
fn teardown_undoes_what_was_made_last_first() {
    let made = Made {
        container: Some(n("dprc.3")),
        objects: vec![n("dpni.4"), n("dpbp.2")],
        assigned: vec![n("dpni.4")],
        connected: Some(n("dpni.4")),
    };
    let argv: Vec<String> = made
        .teardown(&n("dprc.1"))
        .iter()
        .map(|s| s.argv(&made).join(" "))
        .collect();
    assert_eq!(
        argv,
        [
            "dprc disconnect dprc.1 --endpoint=dpni.4",
            "dprc assign dprc.3 --object=dpni.4 --target=dprc.3 --plugged=0",
            "dprc unassign dprc.1 --object=dpni.4 --target=dprc.3",
            "dpbp destroy dpbp.2",
            "dpni destroy dpni.4",
            "dprc destroy dprc.3",
        ]
    );
    let mut left = made.clone();
    for step in made.teardown(&n("dprc.1")) {
        left.undone(&step);
    }
    assert!(left.is_empty());
}

#[test]
fn restool_answers_parse_defensively() {
    let out = "dprc.3 object created (using MC portal id 2, portal addr 0x80c020000)\n";
    assert_eq!(parse_created("dprc", out), Some(n("dprc.3")));
    assert_eq!(
        parse_created("dpni", "dpni.4 is created under dprc.1\n"),
        Some(n("dpni.4"))
    );
    assert_eq!(parse_created("dpni", "something else\n"), None);
    let info = "container id: 3\nicid: 5\ndprc options: 0x1e\n\tDPRC_CFG_OPT_SPAWN_ALLOWED\n\tDPRC_CFG_OPT_IRQ_CFG_ALLOWED\n";
    assert_eq!(
        parse_container_options(info),
        ["DPRC_CFG_OPT_SPAWN_ALLOWED", "DPRC_CFG_OPT_IRQ_CFG_ALLOWED"]
    );
    assert_eq!(
        parse_mc_error("MC error: No resources (status 0x8)\n"),
        Some("No resources")
    );
}

#[test]
fn restools_mc_version_and_container_listing_are_read_defensively() {
    let v = super::parse_mc_version("MC firmware version: 10.28.1\n").unwrap();
    assert_eq!(v.to_string(), "10.28.1");
    // restool warns before it answers on some releases; only the version line counts.
    let v = super::parse_mc_version("WARNING: something\nMC firmware version: 10.20.4\n").unwrap();
    assert_eq!((v.major, v.minor, v.revision), (10, 20, 4));
    for bad in [
        "",
        "MC firmware version: 10.x.1",
        "MC firmware version: 10.28",
    ] {
        assert_eq!(super::parse_mc_version(bad), None, "{bad:?}");
    }
    let show = "dprc.3 contains 3 objects:\nobject\t\tlabel\t\tplugged-state\ndpni.1\t\t\tplugged\n\
                dpbp.2\t\t\tunplugged\ndprc.4\t\t\tplugged\n";
    let names: Vec<String> = super::parse_container_objects("dprc.3", show)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(names, ["dpni.1", "dpbp.2", "dprc.4"]);
}
