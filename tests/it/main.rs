//! Integration tests: the built binary in a temp HOME and state folder.

mod support;

mod adopt;
mod agents;
mod bad_input;
mod derived;
mod fake_docker;
mod fake_engine;
mod install;
mod ktrdr;
mod lifecycle;
mod messages;
mod moved_worktree;
mod plugin;
mod provision;
mod push_images;
mod registry;
mod seed002;
mod signals;
mod slots;
mod workflow;
