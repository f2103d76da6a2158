//! Many slots on one engine: 40 slots of a small stack with two networks
//! each, claimed by 40 worktrees and up at once, every gate passed, `slots`
//! showing them live, then all released with nothing left. Docker's default
//! address pools hold about 30 networks; the pool's own subnets (`[pool]
//! subnets`) hold them all. bench/scale.sh runs the same pool at 99 slots,
//! and shows the engine's pools running out without the pool's own range.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::*;

/// `up`s at a time: enough to overlap compose's waits, few enough for 2 cores.
const AT_ONCE: usize = 4;

/// The pool: `slots` light slots of `fixtures/templates-scale` (two tiny
/// services and two networks each), one port each, the gate a TCP check of it.
fn scale_pool(w: &World, slots: u32) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/engine/fixtures/templates-scale");
    let count = slots;
    let slots: String = (1..=count).map(|s| format!("{s} = \"light\"\n")).collect();
    let text = format!(
        "[pool]\nname = \"{}\"\ntemplates = \"{}\"\ngate_timeout = 120\n\n[slots]\n{slots}\n\
         [profiles]\nlight = {{}}\n\n[ports]\nweb = [{}, 1]\n\n[[gate]]\ntcp = \"web\"\n",
        w.pool,
        dir.display(),
        w.base
    );
    std::fs::write(w.repo.join("docker-sandbox.toml"), text).unwrap();
    w.git(&w.repo, &["commit", "-q", "-am", "a pool of many slots"]);
    std::fs::remove_dir_all(&w.state).unwrap();
    w.run(&w.repo, &["provision"])
        .success()
        .assert_stdout_contains(&format!("Created {count} slot(s)"));
    dir
}

/// Runs `args` in every worktree, `AT_ONCE` at a time.
fn in_each(w: &World, trees: &[PathBuf], args: &[&str]) {
    std::thread::scope(|s| {
        for lane in 0..AT_ONCE {
            s.spawn(move || {
                for tree in trees.iter().skip(lane).step_by(AT_ONCE) {
                    w.run(tree, args).success();
                }
            });
        }
    });
}

/// The subnet of each of the pool's networks, by name.
fn subnets_of(pool: &str) -> Vec<(String, String)> {
    let ids = docker_ok(&[
        "network",
        "ls",
        "-q",
        "--filter",
        &format!("label=org.docker-sandbox.pool={pool}"),
    ]);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let mut args = vec![
        "network",
        "inspect",
        "--format",
        "{{.Name}} {{range .IPAM.Config}}{{.Subnet}}{{end}}",
    ];
    args.extend(ids);
    let mut found: Vec<(String, String)> = docker_ok(&args)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, s)| (n.to_owned(), s.to_owned()))
        .collect();
    found.sort();
    found
}

#[test]
fn forty_slots_with_two_networks_each_are_up_at_once_and_leave_nothing() {
    many_slots_at_once(89, Compose::V2, 40);
}

#[test]
fn compose_1_29_gives_each_network_its_subnet_and_keeps_its_labels() {
    many_slots_at_once(90, Compose::V1, SLOTS_ON_1_29);
}

/// Compose 1.29 replaces a network an extra file names (v2 merges): the
/// networks file carries each network's labels, or release would not know
/// the networks as its own.
const SLOTS_ON_1_29: u32 = 8;

fn many_slots_at_once(n: u32, compose: Compose, count: u32) {
    let w = World::with_compose(n, compose);
    scale_pool(&w, count);
    let trees: Vec<PathBuf> = (1..=count).map(|i| w.worktree(&format!("t{i}"))).collect();

    // Every `up` passes its gate (exit 0 is "is up and ready").
    in_each(&w, &trees, &["up"]);

    let slots = w.slots();
    let list = slots["slots"].as_array().unwrap();
    assert_eq!(list.len(), count as usize, "{slots:#}");
    let holders: BTreeSet<String> = list
        .iter()
        .map(|s| s["claimed_by"].as_str().unwrap_or_default().to_owned())
        .collect();
    let trees_shown: BTreeSet<String> = trees.iter().map(|t| t.display().to_string()).collect();
    assert_eq!(holders, trees_shown, "each worktree holds one slot");
    for s in list {
        let id = s["slot"].as_u64().unwrap() as u32;
        assert_eq!(s["status"], "running", "{s:#}");
        assert_eq!(s["restart_to_apply"], false, "{s:#}");
        assert_eq!(s["ports"]["web"], Value::from(w.base + id as u16), "{s:#}");
        let (status, body) = http_get(w.base + id as u16, "/").unwrap();
        assert_eq!((status, body.trim()), (200, id.to_string().as_str()));
    }

    // Each network has its slot's subnet of the test's range: slot N's
    // block is the Nth /23, `back` its first /26 and `front` its second.
    let range = subnets(n);
    let second = range.split('.').nth(1).unwrap().to_owned();
    let mut want: Vec<(String, String)> = Vec::new();
    for slot in 1..=count {
        let third = 2 * (slot - 1);
        let project = w.project(slot);
        want.push((
            format!("{project}_back"),
            format!("10.{second}.{third}.0/26"),
        ));
        want.push((
            format!("{project}_front"),
            format!("10.{second}.{third}.64/26"),
        ));
    }
    want.sort();
    assert_eq!(subnets_of(&w.pool), want);

    in_each(&w, &trees, &["release"]);
    for slot in 1..=count {
        assert_nothing_left(&w.project(slot));
    }
    assert_eq!(subnets_of(&w.pool), [], "no network of the pool is left");
    assert_eq!(w.leftovers(), Vec::<String>::new());
}
