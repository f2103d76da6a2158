//! Integration tests: the built binary in a temp HOME and state folder.

mod support;

mod install;
mod plugin;
mod provision;
mod registry;
mod seed002;
mod slots;
