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
//! 20; no_engine: 14; workflow: 21, 22; messages: 75, 76.

mod support;

mod env_file;
mod failed_start;
mod lifecycle;
mod messages;
mod no_engine;
mod ports;
mod seed004;
mod stale_claims;
mod stale_volumes;
mod workflow;
