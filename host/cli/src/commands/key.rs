//! `cairn key list | add | remove | passwd`

use anyhow::{Result, bail};
use cairn_repo::{FileType, KdfParams};

use crate::Outcome;
use crate::args::{KeyCommand, NewPasswordArgs};
use crate::output;
use crate::settings::Ctx;
use cairn_apps::{Password, PasswordSource};

fn new_password(ctx: &Ctx, args: &NewPasswordArgs) -> Result<Password> {
    let source = PasswordSource {
        insecure_empty: args.new_insecure_no_password,
        file: args.new_password_file.clone(),
        ..PasswordSource::default()
    };
    let p = ctx.password_from(&source, "enter the new password: ")?;
    if args.new_password_file.is_none() && !args.new_insecure_no_password {
        let again =
            ctx.password_from(&PasswordSource::default(), "enter the new password again: ")?;
        if again.bytes() != p.bytes() {
            bail!("the two new passwords differ; nothing was changed");
        }
    }
    Ok(p)
}

pub fn run(ctx: &Ctx, cmd: KeyCommand) -> Result<Outcome> {
    let repo = ctx.open()?;
    match cmd {
        KeyCommand::List => {
            let keys = repo.keys()?;
            if ctx.global.json {
                output::json(&keys)?;
            } else {
                let rows: Vec<Vec<String>> = keys
                    .iter()
                    .map(|k| {
                        vec![
                            format!("{}{}", if k.current { "*" } else { " " }, &k.id[..8]),
                            k.file.username.clone(),
                            k.file.hostname.clone(),
                            output::time(k.file.created),
                        ]
                    })
                    .collect();
                output::table(&[" ID", "User", "Host", "Created"], &rows)?;
            }
        }
        KeyCommand::Add(a) => {
            let p = new_password(ctx, &a)?;
            let id = repo.add_key(p.bytes(), KdfParams::default(), &ctx.actor())?;
            if !ctx.global.quiet {
                output::line(format!("added key {}", &id[..8]))?;
            }
        }
        KeyCommand::Remove { id } => {
            let id = repo.find_id(FileType::Key, &id)?.to_hex();
            repo.remove_key(&id, false)?;
            if !ctx.global.quiet {
                output::line(format!("removed key {}", &id[..8]))?;
            }
        }
        KeyCommand::Passwd(a) => {
            let p = new_password(ctx, &a)?;
            let new = repo.add_key(p.bytes(), KdfParams::default(), &ctx.actor())?;
            repo.remove_key(repo.key_id(), true)?;
            if !ctx.global.quiet {
                output::line(format!(
                    "password changed: key {} replaces {}",
                    &new[..8],
                    &repo.key_id()[..8]
                ))?;
            }
        }
    }
    Ok(Outcome::Ok)
}
