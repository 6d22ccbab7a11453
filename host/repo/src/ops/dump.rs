//! `dump`: one file's content from a snapshot, to a writer.

use std::io::Write;

use crate::error::{Error, Result};
use crate::format::tree::NodeKind;
use crate::id::Id;
use crate::indexed::IndexedRepository;

/// Writes the content of the file at `path` in the tree `root` to `out`.
///
/// # Errors
/// [`crate::ErrorKind::NotFound`] when there is no such path, [`crate::ErrorKind::InvalidInput`]
/// when it is not a regular file, read errors, and `out`'s write errors as I/O errors.
pub fn dump(repo: &IndexedRepository, root: Id, path: &str, out: &mut dyn Write) -> Result<u64> {
    let node = repo.find_node(root, path)?;
    if node.kind != NodeKind::File {
        return Err(Error::invalid(format!(
            "`{path}` is not a regular file in the snapshot"
        )));
    }
    let mut n = 0;
    for id in node.content.iter().flatten() {
        let data = repo.read_blob(id)?;
        out.write_all(&data)
            .map_err(|e| Error::io("cannot write the output", e))?;
        n += data.len() as u64;
    }
    out.flush()
        .map_err(|e| Error::io("cannot write the output", e))?;
    Ok(n)
}
