//! The real-engine suite: real compose, real containers.
//!
//! Each test builds its own world (temp HOME, state folder, git repository
//! with a `docker-sandbox.toml` pointing at `fixtures/templates`), on a pool
//! name and a block of ports no other test uses, and removes every container,
//! volume and network of its pool when it ends, passed or failed. Run
//! `bash tests/engine/setup.sh` first; without an engine, the test image or
//! compose, every test fails: nothing is skipped.
//!
//! `cargo test --features engine-tests --test engine`
//!
//! Test numbers (`World::new(N)`, unique): pool `e2eN`, ports from
//! 20000 + 500*N. seed004: 1, 17, 18; stale_claims: 2, 3; stale_volumes: 4, 5;
//! env_file: 6; failed_start: 7-9, 23; ports: 10; lifecycle: 11-13, 15, 16, 19,
//! 20; no_engine: 14; workflow: 21, 22; signals: 40-43; gate: 45-49; data_safety:
//! 53-57; identity: 60-63 (pools `e2eid<N>`); derived: 66-70; messages: 75, 76;
//! adopted: 24, 25, 80, 81 (bare worlds: no project file, the repository's own compose file);
//! corpus: 82, 83 (bare worlds adopting real projects' compose files); ktrdr:
//! 84, 85 (the embedded default pool in a KTRDR-shaped checkout); after_up:
//! 86, 87 (pools `afterup<N>`); engines: 88 (the extra engines of
//! `engines.sh`, other hosts in network namespaces); multi_engine: 30-34,
//! 37-39 (pools over the local engine and those extra ones; `remote<N>` for
//! 37-39); push_images: 35, 36 (pools `push<N>`: images copied to an extra
//! engine); scale: 89, 90 (40 slots
//! up at once). Test N's pools take their subnets from 10.(100+N).0.0/16
//! (`DOCKER_SANDBOX_SUBNETS`).

mod support;

mod adopted;
mod after_up;
mod corpus;
mod data_safety;
mod derived;
mod engines;
mod env_file;
mod failed_start;
mod gate;
mod identity;
mod ktrdr;
mod lifecycle;
mod messages;
mod multi_engine;
mod no_engine;
mod ports;
mod push_images;
mod scale;
mod seed004;
mod signals;
mod stale_claims;
mod stale_volumes;
mod workflow;
