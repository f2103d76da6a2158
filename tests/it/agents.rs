//! Many agents at once, and crashes: concurrent claims and `up`s on a 6-slot
//! pool, and `claim`/`release` killed with SIGKILL at random moments.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::fake_engine::FakeEngine;
use crate::support::*;

static BLOCK: AtomicU32 = AtomicU32::new(0);

/// The default pool with its ports moved to a block no other test uses, so
/// the real port probes see free ports.
pub fn project_file(ctx: &TestContext) -> PathBuf {
    // Above the ephemeral range (32768-60999), where no outgoing connection lands.
    let b = 61000 + 300 * BLOCK.fetch_add(1, Ordering::Relaxed);
    ctx.git_init();
    ctx.write_project_file(&format!(
        "{NO_STEPS}[ports]\napi = [{b}, 1]\ndb = [{}, 1]\ngrafana = [{}, 1]\njaeger_ui = [{}, 1]\nprometheus = [{}, 1]\n\
         jaeger_otlp_grpc = [{}, 10]\njaeger_otlp_http = [{}, 10]\nworkers = [{}, 10]\n",
        b + 10,
        b + 20,
        b + 30,
        b + 40,
        b + 100,
        b + 101,
        b + 200
    ))
}

/// `n` separate git repositories, each a worktree that can claim.
fn worktrees(ctx: &TestContext, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let dir = ctx.root.join(format!("agent-{i:02}"));
            std::fs::create_dir_all(&dir).unwrap();
            let ok = std::process::Command::new("git")
                .args(["init", "-q"])
                .current_dir(&dir)
                .status()
                .unwrap();
            assert!(ok.success());
            dir
        })
        .collect()
}

fn spawn(ctx: &TestContext, cfg: &Path, engine: &FakeEngine, wt: &Path, args: &[&str]) -> Child {
    ctx.cmd()
        .current_dir(wt)
        .env("DOCKER_SANDBOX_CONFIG", cfg)
        .env("DOCKER_HOST", engine.host())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The registry's claims: worktree -> slot.
fn claims(ctx: &TestContext) -> BTreeMap<PathBuf, u32> {
    let reg = ctx.registry();
    reg["slots"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|s| {
            Some((
                PathBuf::from(s["claimed_by"].as_str()?),
                s["slot_id"].as_u64()? as u32,
            ))
        })
        .collect()
}

fn provisioned(ctx: &TestContext) -> PathBuf {
    let cfg = project_file(ctx);
    ctx.run(&["provision"]).success();
    cfg
}

#[test]
fn thirty_two_agents_claim_six_slots() {
    let ctx = TestContext::new();
    let cfg = provisioned(&ctx);
    let engine = FakeEngine::start(&ctx.root);
    let wts = worktrees(&ctx, 32);
    let children: Vec<_> = wts
        .iter()
        .map(|wt| spawn(&ctx, &cfg, &engine, wt, &["claim", "--format", "json"]))
        .collect();
    let mut won = BTreeMap::new();
    let mut lost = 0;
    for (wt, child) in wts.iter().zip(children) {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(0) => {
                let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
                assert_eq!(v["fresh"], true);
                won.insert(
                    wt.canonicalize().unwrap(),
                    v["slot"].as_u64().unwrap() as u32,
                );
            }
            Some(1) => {
                assert!(
                    stderr.contains("no free slot with profile `light` or heavier"),
                    "{stderr}"
                );
                assert!(stderr.contains("hint: "), "{stderr}");
                lost += 1;
            }
            other => panic!("unexpected exit {other:?}: {stdout}\n{stderr}"),
        }
    }
    assert_eq!(won.len(), 6, "exactly six agents get a slot");
    assert_eq!(lost, 26);
    let slots: BTreeSet<u32> = won.values().copied().collect();
    assert_eq!(slots, (1..=6).collect(), "six distinct slots");
    assert_eq!(
        claims(&ctx),
        won,
        "the registry holds exactly the claims that were reported"
    );
    for wt in won.keys() {
        assert_eq!(mode(&wt.join(".env.sandbox")), 0o600);
    }
}

#[test]
fn linked_worktrees_claiming_at_once_add_one_exclude_line() {
    let ctx = TestContext::new();
    let cfg = provisioned(&ctx);
    let engine = FakeEngine::start(&ctx.root);
    let main = ctx.root.join("main");
    std::fs::create_dir_all(&main).unwrap();
    ctx.git(&main, &["init", "-q"]);
    ctx.git(&main, &["commit", "-q", "--allow-empty", "-m", "init"]);
    let wts: Vec<PathBuf> = (0..6)
        .map(|i| {
            let wt = ctx.root.join(format!("main--{i}"));
            ctx.git(
                &main,
                &[
                    "worktree",
                    "add",
                    "-q",
                    "-b",
                    &format!("b{i}"),
                    wt.to_str().unwrap(),
                ],
            );
            wt
        })
        .collect();
    let children: Vec<_> = wts
        .iter()
        .map(|wt| spawn(&ctx, &cfg, &engine, wt, &["claim"]))
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // They share one `info/exclude`: the line is there once.
    let exclude = std::fs::read_to_string(main.join(".git/info/exclude")).unwrap();
    let lines = exclude.lines().filter(|l| *l == "/.env.sandbox").count();
    assert_eq!(lines, 1, "{exclude}");
    for wt in &wts {
        assert!(wt.join(".env.sandbox").is_file());
        let status = ctx.git(wt, &["status", "--porcelain", "--untracked-files=all"]);
        assert_eq!(status, "", "{}", wt.display());
    }
}

#[test]
fn thirty_two_agents_up_at_once() {
    let ctx = TestContext::new();
    let cfg = provisioned(&ctx);
    let engine = FakeEngine::start(&ctx.root);
    let log = ctx.root.join("docker.log");
    write_executable(
        &ctx.bin.join("docker"),
        &format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\n\
             case \"$*\" in *'compose version --short'*) echo 2.29.7 ;; esac\nexit 0\n",
            log.display()
        ),
    );
    let wts = worktrees(&ctx, 32);
    let children: Vec<_> = wts
        .iter()
        .map(|wt| spawn(&ctx, &cfg, &engine, wt, &["up", "--no-wait"]))
        .collect();
    let mut codes = BTreeMap::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let code = out.status.code().unwrap();
        if code == 1 {
            assert!(stderr.contains("no free slot"), "{stderr}");
        }
        *codes.entry(code).or_insert(0) += 1;
    }
    assert_eq!(codes, BTreeMap::from([(0, 6), (1, 26)]));
    let text = std::fs::read_to_string(&log).unwrap();
    let ups: BTreeSet<&str> = text
        .lines()
        .filter(|l| l.ends_with(" up -d --remove-orphans"))
        .map(|l| l.split_whitespace().nth(2).unwrap())
        .collect();
    assert_eq!(ups.len(), 6, "one `compose up` per won slot: {text}");
    assert_eq!(claims(&ctx).len(), 6);
}

/// A small xorshift: random enough for kill timings, no crate needed.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

/// When to kill a run: a delay drawn from `[0, span)`, where `span` follows
/// the runs themselves. A kill that landed (the run was still going) means
/// the delays are short of the runs, so it grows; a run that finished before
/// its kill means they are long, so it shrinks. About half the kills land
/// whatever the machine's speed, and a machine that slows down mid-test moves
/// it along. It stays within a factor of 20 of where it started, so a run of
/// one-sided outcomes cannot run it away.
struct Window {
    span: Duration,
    least: Duration,
    most: Duration,
}

impl Window {
    /// Starts from twice the median time of a few undisturbed runs.
    fn calibrated(mut sample: impl FnMut() -> Duration) -> Window {
        let mut times: Vec<Duration> = (0..6).map(|_| sample()).collect();
        times.sort();
        let span = (times[times.len() / 2] * 2).max(Duration::from_micros(100));
        Window {
            span,
            least: span / 20,
            most: span * 20,
        }
    }

    fn delay(&self, rng: &mut Rng) -> Duration {
        let micros = u64::try_from(self.span.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        Duration::from_micros(rng.next(micros))
    }

    fn landed(&mut self, kill_landed: bool) {
        let factor = if kill_landed { 1.05 } else { 0.95 };
        self.span = self.span.mul_f64(factor).clamp(self.least, self.most);
    }
}

/// What the test knows of a worktree's claim.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Known {
    Holds(u32),
    Free,
    /// A process on it was killed: the claim may or may not have been made.
    Unsure,
}

#[test]
fn sigkill_at_random_moments_never_corrupts_or_loses_a_claim() {
    let ctx = TestContext::new();
    let cfg = provisioned(&ctx);
    let engine = FakeEngine::start(&ctx.root);
    let wts = worktrees(&ctx, 8);
    let canon: Vec<PathBuf> = wts.iter().map(|w| w.canonicalize().unwrap()).collect();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Rng(seed | 1);
    let mut known = vec![Known::Free; wts.len()];
    // The calibration runs claim and release on one worktree, leaving it free.
    let mut window = Window::calibrated(|| {
        let started = Instant::now();
        for args in [&["claim"][..], &["release"]] {
            let out = spawn(&ctx, &cfg, &engine, &wts[0], args)
                .wait_with_output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        started.elapsed() / 2
    });
    let (mut killed, mut finished) = (0, 0);
    for cycle in 0..200 {
        // Three agents per cycle, on distinct worktrees.
        let mut picked = BTreeSet::new();
        while picked.len() < 3 {
            picked.insert(rng.next(wts.len() as u64) as usize);
        }
        let runs: Vec<(usize, bool, Child, Instant)> = picked
            .into_iter()
            .map(|i| {
                let claim = rng.next(2) == 0;
                let args: &[&str] = if claim {
                    &["claim", "--format", "json"]
                } else {
                    &["release"]
                };
                let child = spawn(&ctx, &cfg, &engine, &wts[i], args);
                (i, claim, child, Instant::now() + window.delay(&mut rng))
            })
            .collect();
        for (i, claim, mut child, kill_at) in runs {
            std::thread::sleep(kill_at.saturating_duration_since(Instant::now()));
            let was_running = child.try_wait().unwrap().is_none();
            if was_running {
                child.kill().unwrap();
            }
            window.landed(was_running);
            let out = child.wait_with_output().unwrap();
            match (was_running, out.status.code()) {
                (true, _) | (_, None) => {
                    killed += 1;
                    known[i] = Known::Unsure;
                }
                (false, Some(0)) => {
                    finished += 1;
                    known[i] = if claim {
                        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                        Known::Holds(v["slot"].as_u64().unwrap() as u32)
                    } else {
                        Known::Free
                    };
                }
                (false, Some(code)) => {
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    assert!(
                        code == 1 && stderr.contains("no free slot"),
                        "cycle {cycle}: exit {code}: {stderr}"
                    );
                    finished += 1;
                }
            }
        }
        // The registry parses after every cycle, and holds every claim that
        // was reported, and none that was reported released.
        let text = std::fs::read_to_string(ctx.registry_path()).unwrap();
        let reg: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("cycle {cycle}: registry does not parse: {e}\n{text}"));
        assert_eq!(reg["version"], 2);
        let held = claims(&ctx);
        for (i, k) in known.iter().enumerate() {
            match k {
                Known::Holds(slot) => {
                    assert_eq!(
                        held.get(&canon[i]),
                        Some(slot),
                        "cycle {cycle}: a reported claim was lost"
                    )
                }
                Known::Free => assert_eq!(
                    held.get(&canon[i]),
                    None,
                    "cycle {cycle}: a reported release came back"
                ),
                Known::Unsure => {}
            }
        }
        let slots: BTreeSet<u32> = held.values().copied().collect();
        assert_eq!(
            slots.len(),
            held.len(),
            "cycle {cycle}: one slot held twice"
        );
    }
    assert!(
        killed >= 50,
        "the kills must land: {killed} of {} runs",
        killed + finished
    );
    assert!(finished >= 50, "and some runs must finish: {finished}");
    // Temp files of killed writers are swept by the next writer.
    ctx.run(&["provision"]).success();
    let stray: Vec<_> = std::fs::read_dir(&ctx.state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

#[test]
fn slots_asks_the_engine_once_for_the_whole_pool() {
    let ctx = TestContext::new();
    let cfg = provisioned(&ctx);
    let engine = FakeEngine::start(&ctx.root);
    let before = engine.requests.load(Ordering::Relaxed);
    let mut cmd = ctx.cmd();
    cmd.env("DOCKER_SANDBOX_CONFIG", &cfg)
        .env("DOCKER_HOST", engine.host())
        .args(["slots", "--format", "json"]);
    let run = TestContext::run_cmd(cmd).success();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["live"], true);
    assert_eq!(v["slots"].as_array().unwrap().len(), 6);
    assert_eq!(
        engine.requests.load(Ordering::Relaxed) - before,
        1,
        "one engine query for six slots"
    );
}
