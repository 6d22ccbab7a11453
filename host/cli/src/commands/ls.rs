//! `cairn ls`

use anyhow::Result;
use cairn_repo::ops::walk::walk;
use cairn_repo::{Node, NodeKind};
use serde::Serialize;

use crate::Outcome;
use crate::args::LsArgs;
use crate::output;
use crate::settings::Ctx;

#[derive(Serialize)]
struct Entry<'a> {
    path: &'a str,
    #[serde(rename = "type")]
    kind: NodeKind,
    mode: u32,
    uid: u32,
    gid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a str>,
    size: u64,
    mtime: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    link_target: Option<String>,
}

pub fn run(ctx: &Ctx, args: LsArgs) -> Result<Outcome> {
    let repo = ctx.open()?;
    let (_, snap) = super::find(&repo, &args.snapshot, &args.filter)?;
    let repo = repo.to_indexed()?;
    let prefix = args.dir.clone().unwrap_or_default();
    let start = repo.find_node(snap.tree, &prefix)?;
    let print = |path: &str, n: &Node| -> std::io::Result<()> {
        if ctx.global.json {
            output::json(&Entry {
                path,
                kind: n.kind,
                mode: n.mode,
                uid: n.uid,
                gid: n.gid,
                user: n.user.as_deref(),
                group: n.group.as_deref(),
                size: n.size,
                mtime: output::node_time(n.mtime).to_string(),
                link_target: n.link_target.as_ref().map(|t| t.display()),
            })
        } else if args.long {
            output::line(output::long_line(path, n))
        } else {
            output::line(path)
        }
    };
    let root = format!("/{}", prefix.trim_matches('/'));
    match (start.kind, start.subtree) {
        (NodeKind::Dir, Some(tree)) => walk(&repo, tree, &root, &mut |p, n| {
            print(p, n).map_err(|e| cairn_repo::Error::io("cannot write the output", e))?;
            Ok(true)
        })?,
        _ => print(&root, &start)?,
    }
    Ok(Outcome::Ok)
}
