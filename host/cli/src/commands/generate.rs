//! `cairn generate` (shell completions, man pages) and `cairn version`.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use clap::CommandFactory;
use clap_complete::Shell;

use crate::Outcome;
use crate::args::{Cli, GenerateArgs};
use crate::output;
use crate::settings::Ctx;

pub fn run(args: &GenerateArgs) -> Result<Outcome> {
    let shells = [
        (Shell::Bash, &args.bash_completion),
        (Shell::Zsh, &args.zsh_completion),
        (Shell::Fish, &args.fish_completion),
        (Shell::PowerShell, &args.powershell_completion),
    ];
    if shells.iter().all(|(_, f)| f.is_none()) && args.man.is_none() {
        bail!(
            "say what to write: --bash-completion, --zsh-completion, --fish-completion, \
             --powershell-completion FILE, or --man DIR"
        );
    }
    for (shell, file) in shells {
        let Some(file) = file else { continue };
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "cairn", &mut text);
        write_out(file, &text).with_context(|| format!("writing the {shell} completion"))?;
    }
    if let Some(dir) = &args.man {
        man_pages(dir)?;
    }
    Ok(Outcome::Ok)
}

/// Writes `text` to `file`, or to stdout for `-`.
fn write_out(file: &Path, text: &[u8]) -> Result<()> {
    if file == Path::new("-") {
        std::io::stdout().lock().write_all(text)?;
        return Ok(());
    }
    std::fs::write(file, text).with_context(|| format!("cannot write {}", file.display()))
}

/// One page per command and subcommand: `cairn.1`, `cairn-backup.1`, `cairn-key-add.1`, …
fn man_pages(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut cmd = Cli::command();
    cmd.build();
    let mut stack = vec![(String::from("cairn"), cmd)];
    while let Some((name, cmd)) = stack.pop() {
        for sub in cmd.get_subcommands() {
            if sub.get_name() != "help" {
                stack.push((format!("{name}-{}", sub.get_name()), sub.clone()));
            }
        }
        let mut text = Vec::new();
        clap_mangen::Man::new(cmd.name(name.clone())).render(&mut text)?;
        let file = dir.join(format!("{name}.1"));
        std::fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))?;
    }
    Ok(())
}

/// `cairn 0.1.0 on linux/x86_64`, as restic's `restic 0.16.0 compiled with go1.21 on linux/amd64`.
pub fn version(ctx: &Ctx) -> Result<Outcome> {
    let version = env!("CARGO_PKG_VERSION");
    let (os, arch) = (std::env::consts::OS, std::env::consts::ARCH);
    if ctx.global.json {
        output::json(&serde_json::json!({
            "message_type": "version",
            "version": version,
            "os": os,
            "arch": arch,
        }))?;
    } else {
        output::line(format!("cairn {version} on {os}/{arch}"))?;
    }
    Ok(Outcome::Ok)
}
