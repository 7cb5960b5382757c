//! `swarmpilot schema`: writes or prints the JSON Schema and CRD of `ScalingPolicy`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::Output;
use crate::policy::schema::{crd_yaml, json_schema_text, CRD_FILE, SCHEMA_FILE};

/// Arguments of `swarmpilot schema`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write scalingpolicy.schema.json and scalingpolicy.crd.yaml into this directory (e.g.
    /// `crds`). Without it, the JSON Schema is printed, or the CRD with `-o yaml`.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

pub fn run(args: &Args, output: Output) -> anyhow::Result<ExitCode> {
    let Some(dir) = &args.out_dir else {
        match output {
            Output::Yaml => print!("{}", crd_yaml()),
            Output::Json | Output::Table => print!("{}", json_schema_text()),
        }
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, text) in [(SCHEMA_FILE, json_schema_text()), (CRD_FILE, crd_yaml())] {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
