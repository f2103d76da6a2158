//! Integration tests: the built binary in a temp HOME and state folder.

mod support;

mod agents;
mod bad_input;
mod fake_docker;
mod fake_engine;
mod install;
mod lifecycle;
mod messages;
mod plugin;
mod provision;
mod registry;
mod seed002;
mod slots;
mod workflow;
