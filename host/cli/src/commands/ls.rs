//! `cairn ls`

use anyhow::Result;
use cairn_repo::ops::walk::walk;
use cairn_repo::{Node, NodeKind};

use crate::Outcome;
use crate::args::LsArgs;
use crate::output;
use crate::settings::Ctx;

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
            let mut entry = output::NodeJson::new(path, n);
            entry.struct_type = Some("node");
            entry.message_type = Some("node");
            output::json(&entry)
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
