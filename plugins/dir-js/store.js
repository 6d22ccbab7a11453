// The `dir` storage backend in JavaScript (componentize-js).
//
// A repository in the directory the host mounts at /repo, in the native local layout (config,
// keys/, snapshots/, index/, locks/, data/xx/). The exported interface `store` is the object of
// that name, its resource the class `Store`. Every path is opened relative to the /repo
// descriptor; a write goes to a temporary file that is synced and hard-linked to its name, and
// the link fails when the name exists, so create-only is atomic.
//
// Errors: a thrown `{ tag, val }` is the `error` variant the host receives; the file system's
// own errors arrive as exceptions whose `payload` is WASI's error code.

import { getDirectories } from 'wasi:filesystem/preopens@0.2.12';
import { log } from 'cairn:plugin/log@0.1.0';

const ROOT = '/repo';
const DIRS = { key: 'keys', snapshot: 'snapshots', index: 'index', pack: 'data', lock: 'locks' };
const HEX = /^[0-9a-fA-F]{1,128}$/;
// The most read from a file in one call.
const READ_CHUNK = 4 << 20;
const NO_FOLLOW = {};
let counter = 0;

function codeOf(e) {
  return e !== null && typeof e === 'object' && 'payload' in e ? e.payload : undefined;
}

function fail(what, name, e) {
  // Already the error variant (thrown by this module): as it is.
  if (e !== null && typeof e === 'object' && 'tag' in e && !('payload' in e)) return e;
  const code = codeOf(e);
  const val = `${what} ${name}: ${code ?? e}`;
  switch (code) {
    case 'no-entry':
      return { tag: 'not-found', val };
    case 'exist':
      return { tag: 'already-exists', val };
    case 'access':
    case 'not-permitted':
    case 'read-only':
      return { tag: 'denied', val };
    default:
      return { tag: 'other', val };
  }
}

function close(resource) {
  const dispose = resource?.[Symbol.dispose];
  if (typeof dispose === 'function') dispose.call(resource);
}

function path(kind, name) {
  if (kind === 'config') return 'config';
  if (!HEX.test(name)) {
    throw { tag: 'invalid-config', val: `\`${name}\` is not a valid file name` };
  }
  if (kind === 'pack') return `data/${name.slice(0, 2)}/${name}`;
  return `${DIRS[kind]}/${name}`;
}

function folderOf(kind) {
  return kind === 'config' ? '.' : DIRS[kind];
}

function randomHex() {
  const bytes = new Uint8Array(4);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

class Store {
  constructor(root) {
    this.root = root;
  }

  static open(config) {
    if (!config.some(([key]) => key === 'path')) {
      throw {
        tag: 'invalid-config',
        val: 'missing configuration key `path`: set it in the configuration file or with -o path=DIR',
      };
    }
    const found = getDirectories().find(([, at]) => at === ROOT);
    if (!found) {
      throw { tag: 'invalid-config', val: `no directory is mounted at ${ROOT}: grant it read-write` };
    }
    log('debug', `dir-js: store open at ${ROOT}`);
    return new Store(found[0]);
  }

  guarantees() {
    return { atomicCreate: true };
  }

  create() {
    let exists = true;
    try {
      this.root.statAt(NO_FOLLOW, 'config');
    } catch (e) {
      if (codeOf(e) !== 'no-entry') throw fail('cannot look up', 'config', e);
      exists = false;
    }
    if (exists) throw { tag: 'already-exists', val: 'the directory already holds a repository' };
    const folders = Object.values(DIRS);
    for (let i = 0; i < 256; i++) folders.push(`data/${i.toString(16).padStart(2, '0')}`);
    for (const folder of folders) {
      try {
        this.root.createDirectoryAt(folder);
      } catch (e) {
        if (codeOf(e) !== 'exist') throw fail('cannot create', folder, e);
      }
    }
  }

  listFiles(kind) {
    if (kind === 'config') {
      try {
        return [{ name: 'config', size: this.root.statAt(NO_FOLLOW, 'config').size }];
      } catch (e) {
        if (codeOf(e) === 'no-entry') return [];
        throw fail('cannot look up', 'config', e);
      }
    }
    const top = DIRS[kind];
    const folders = [top];
    if (kind === 'pack') {
      folders.length = 0;
      for (let i = 0; i < 256; i++) folders.push(`${top}/${i.toString(16).padStart(2, '0')}`);
    }
    const entries = [];
    for (const folder of folders) {
      let dir;
      try {
        dir = this.root.openAt(NO_FOLLOW, folder, { directory: true }, { read: true });
      } catch (e) {
        if (codeOf(e) === 'no-entry') continue;
        throw fail('cannot list', folder, e);
      }
      let stream;
      try {
        stream = dir.readDirectory();
        for (let entry; (entry = stream.readDirectoryEntry()) !== undefined; ) {
          if (entry.name.startsWith('.') || entry.type !== 'regular-file') continue;
          let size;
          try {
            size = dir.statAt(NO_FOLLOW, entry.name).size;
          } catch (e) {
            // Removed while listed (a lock, a pruned pack): not there any more.
            if (codeOf(e) === 'no-entry') continue;
            throw e;
          }
          entries.push({ name: entry.name, size });
        }
      } catch (e) {
        throw fail('cannot list', folder, e);
      } finally {
        close(stream);
        close(dir);
      }
    }
    return entries;
  }

  read(kind, name, offset, length) {
    const at = path(kind, name);
    let file;
    try {
      file = this.root.openAt(NO_FOLLOW, at, {}, { read: true });
    } catch (e) {
      throw fail('cannot read', name, e);
    }
    try {
      const size = file.stat().size;
      const start = length === undefined ? 0n : offset;
      const end = length === undefined ? size : offset + length < size ? offset + length : size;
      const want = end > start ? Number(end - start) : 0;
      const out = new Uint8Array(want);
      let got = 0;
      while (got < want) {
        const ask = Math.min(want - got, READ_CHUNK);
        const [chunk, done] = file.read(BigInt(ask), start + BigInt(got));
        out.set(chunk, got);
        got += chunk.length;
        if (done || chunk.length === 0) break;
      }
      // Fewer bytes than asked for: the host treats the file as corrupt.
      return got === want ? out : out.subarray(0, got);
    } catch (e) {
      throw fail('cannot read', name, e);
    } finally {
      close(file);
    }
  }

  write(kind, name, data) {
    const at = path(kind, name);
    const temp = `${folderOf(kind)}/.tmp-${name.slice(0, 8)}-${counter++}-${randomHex()}`;
    let file;
    try {
      file = this.root.openAt(NO_FOLLOW, temp, { create: true, exclusive: true }, { write: true });
      let done = 0;
      while (done < data.length) {
        const n = Number(file.write(data.subarray(done), BigInt(done)));
        if (n === 0) throw { tag: 'other', val: `cannot store ${name}: the file system took no bytes` };
        done += n;
      }
      file.sync();
      close(file);
      file = undefined;
      this.root.linkAt(NO_FOLLOW, temp, this.root, at);
    } catch (e) {
      throw fail('cannot store', name, e);
    } finally {
      close(file);
      try {
        this.root.unlinkFileAt(temp);
      } catch {
        // Never made, or already gone.
      }
    }
  }

  remove(kind, name) {
    try {
      this.root.unlinkFileAt(path(kind, name));
    } catch (e) {
      throw fail('cannot remove', name, e);
    }
  }
}

export const store = { Store };
