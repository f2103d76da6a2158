//! `version [--format json]`: the plugin's name and version, as docker's own
//! `docker compose version` prints them.

use anyhow::Result;
use serde::Serialize;

use crate::cli::Format;
use crate::output;

#[derive(Serialize)]
struct VersionJson {
    name: &'static str,
    version: &'static str,
}

pub(crate) fn exec(format: Format) -> Result<u8> {
    let v = VersionJson {
        name: env!("CARGO_PKG_NAME"),
        version: env!("CARGO_PKG_VERSION"),
    };
    if format == Format::Json {
        output::json(&v);
    } else {
        output::line(&format!("{} {}", v.name, v.version));
    }
    Ok(0)
}
