//! The real-engine suite: real compose, real containers.
