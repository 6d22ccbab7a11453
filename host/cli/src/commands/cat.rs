//! `cairn cat`

use anyhow::{Result, anyhow, bail};
use cairn_repo::format::index::IndexFile;
use cairn_repo::format::keyfile::KeyFile;
use cairn_repo::ops::recover::read_pack_header;
use cairn_repo::{FileType, Id, Snapshot};

use crate::Outcome;
use crate::args::{CatArgs, CatKind, FilterArgs};
use crate::output;
use crate::settings::Ctx;

pub fn run(ctx: &Ctx, args: CatArgs) -> Result<Outcome> {
    let repo = ctx.open()?;
    let need = || {
        args.id
            .as_deref()
            .ok_or_else(|| anyhow!("`cairn cat {:?}` needs an id", args.kind))
    };
    match args.kind {
        CatKind::Config => {
            if args.id.is_some() {
                bail!("`cairn cat config` takes no id");
            }
            output::json_pretty(repo.config())?;
        }
        CatKind::Key => {
            let id = repo.find_id(FileType::Key, need()?)?;
            let kf = KeyFile::from_bytes(
                &id.to_hex(),
                &repo.backend().read(FileType::Key, &id.to_hex())?,
            )?;
            // The wrapped key is sealed, but there is no reason to print it.
            let mut v = serde_json::to_value(&kf)?;
            v["data"] = serde_json::json!("<sealed>");
            output::json_pretty(&v)?;
        }
        CatKind::Snapshot => {
            let (id, snap) = super::find(&repo, need()?, &FilterArgs::default())?;
            let mut v = serde_json::to_value::<&Snapshot>(&snap)?;
            v["id"] = serde_json::json!(id);
            output::json_pretty(&v)?;
        }
        CatKind::Index => {
            let id = repo.find_id(FileType::Index, need()?)?;
            output::json_pretty(&repo.load_file::<IndexFile>(FileType::Index, &id)?)?;
        }
        CatKind::Pack => {
            let id = repo.find_id(FileType::Pack, need()?)?;
            let size = repo
                .packs()?
                .into_iter()
                .find(|(p, _)| *p == id)
                .map(|(_, s)| s)
                .ok_or_else(|| anyhow!("pack {id} vanished"))?;
            let repo = repo.to_indexed()?;
            output::json_pretty(&read_pack_header(&repo, &id, size)?)?;
        }
        CatKind::Tree => {
            let spec = need()?;
            let repo_i = repo.to_indexed()?;
            let id = match spec.split_once(':') {
                Some((snap, path)) => {
                    let (_, s) = super::find(&repo_i, snap, &FilterArgs::default())?;
                    let node = repo_i.find_node(s.tree, path)?;
                    node.subtree
                        .ok_or_else(|| anyhow!("`{path}` is not a directory"))?
                }
                None => spec.parse::<Id>()?,
            };
            output::json_pretty(&repo_i.load_tree(&id)?)?;
        }
        CatKind::Blob => {
            let id: Id = need()?.parse()?;
            let repo = repo.to_indexed()?;
            output::raw(&repo.read_blob(&id)?)?;
        }
    }
    Ok(Outcome::Ok)
}
