//! `cairn ls`

use anyhow::Result;
use cairn_repo::ops::walk::walk;
use cairn_repo::{Node, NodeKind};
use serde::Serialize;

use crate::Outcome;
use crate::args::LsArgs;
use crate::output;
use crate::settings::Ctx;

/// A node as restic's `ls --json` prints it (and cairn's owner names and link target).
#[derive(Serialize)]
struct Entry<'a> {
    name: String,
    #[serde(rename = "type")]
    kind: NodeKind,
    path: &'a str,
    uid: u32,
    gid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    mode: u32,
    permissions: String,
    mtime: String,
    atime: String,
    ctime: String,
    inode: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    link_target: Option<String>,
    struct_type: &'static str,
    message_type: &'static str,
}

pub fn run(ctx: &Ctx, args: LsArgs) -> Result<Outcome> {
    let repo = ctx.open()?;
    let (id, snap) = super::find(&repo, &args.snapshot, &args.filter)?;
    if ctx.global.json {
        // restic's first line: the snapshot.
        let mut v = output::snapshot_json(&id, &snap);
        v["struct_type"] = serde_json::json!("snapshot");
        v["message_type"] = serde_json::json!("snapshot");
        output::json(&v)?;
    }
    let repo = repo.to_indexed()?;
    let prefix = args.dir.clone().unwrap_or_default();
    let start = repo.find_node(snap.tree, &prefix)?;
    let print = |path: &str, n: &Node| -> std::io::Result<()> {
        if ctx.global.json {
            output::json(&Entry {
                name: path.rsplit('/').next().unwrap_or(path).to_owned(),
                kind: n.kind,
                path,
                uid: n.uid,
                gid: n.gid,
                user: n.user.as_deref(),
                group: n.group.as_deref(),
                size: (n.kind != NodeKind::Dir).then_some(n.size),
                mode: n.mode,
                permissions: output::mode_string(n),
                mtime: output::node_time(n.mtime).to_string(),
                atime: output::node_time(n.atime).to_string(),
                ctime: output::node_time(n.ctime).to_string(),
                inode: n.inode,
                link_target: n.link_target.as_ref().map(|t| t.display()),
                struct_type: "node",
                message_type: "node",
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
