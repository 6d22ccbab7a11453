// The `dir` storage backend in C: a repository in the directory the host mounts at /repo,
// in the native local layout (config, keys/, snapshots/, index/, locks/, data/xx/).
//
// Built against the bindings `wit-bindgen c` generates for the storage-backend world
// (storage_backend.h), with clang for wasm32-wasi and wasi-libc, then wrapped into a
// component with the WASI preview 1 adapter. Writes go to a temporary file that is synced and
// hard-linked to its name: link() fails when the name exists, so create-only is atomic.
//
// Exported functions own their arguments (strings, lists, the config) and free them.

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storage_backend.h"

typedef exports_cairn_plugin_store_error_t error_t;
typedef exports_cairn_plugin_store_kind_t kind_t;

struct exports_cairn_plugin_store_store_t {
  int opened;
};

static const char *ROOT = "/repo";

static const char *dir_of(kind_t kind) {
  switch (kind) {
    case EXPORTS_CAIRN_PLUGIN_STORE_KIND_KEY: return "keys";
    case EXPORTS_CAIRN_PLUGIN_STORE_KIND_SNAPSHOT: return "snapshots";
    case EXPORTS_CAIRN_PLUGIN_STORE_KIND_INDEX: return "index";
    case EXPORTS_CAIRN_PLUGIN_STORE_KIND_PACK: return "data";
    case EXPORTS_CAIRN_PLUGIN_STORE_KIND_LOCK: return "locks";
    default: return "";
  }
}

// Sets `err` to `tag` with a message and returns false (the failure value of every export).
static bool fail_with(error_t *err, uint8_t tag, const char *message) {
  err->tag = tag;
  // Every case of the variant holds a string at the same place.
  storage_backend_string_dup(&err->val.other, message);
  return false;
}

// Sets `err` from errno: what failed, on which name, and why.
static bool fail(error_t *err, const char *what, const char *name) {
  int e = errno;
  uint8_t tag = CAIRN_PLUGIN_TYPES_ERROR_OTHER;
  if (e == ENOENT) tag = CAIRN_PLUGIN_TYPES_ERROR_NOT_FOUND;
  else if (e == EEXIST) tag = CAIRN_PLUGIN_TYPES_ERROR_ALREADY_EXISTS;
  else if (e == EACCES || e == EPERM || e == ENOTCAPABLE) tag = CAIRN_PLUGIN_TYPES_ERROR_DENIED;
  char message[512];
  snprintf(message, sizeof message, "%s %s: %s", what, name, strerror(e));
  return fail_with(err, tag, message);
}

// A NUL-terminated copy of a WIT string (freed by the caller); frees the original.
static char *take(storage_backend_string_t *s) {
  char *c = malloc(s->len + 1);
  memcpy(c, s->ptr, s->len);
  c[s->len] = 0;
  storage_backend_string_free(s);
  return c;
}

static bool valid_name(const char *name) {
  if (!*name) return false;
  for (const char *p = name; *p; p++) {
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F'))) return false;
  }
  return true;
}

// The path of a file, or false (with `err` set) for a bad name.
static bool path_of(char *out, size_t n, kind_t kind, const char *name, error_t *err) {
  if (kind == EXPORTS_CAIRN_PLUGIN_STORE_KIND_CONFIG) {
    snprintf(out, n, "%s/config", ROOT);
    return true;
  }
  if (!valid_name(name)) {
    char message[300];
    snprintf(message, sizeof message, "`%.200s` is not a valid file name", name);
    return fail_with(err, CAIRN_PLUGIN_TYPES_ERROR_INVALID_CONFIG, message);
  }
  if (kind == EXPORTS_CAIRN_PLUGIN_STORE_KIND_PACK) {
    snprintf(out, n, "%s/data/%.2s/%s", ROOT, name, name);
  } else {
    snprintf(out, n, "%s/%s/%s", ROOT, dir_of(kind), name);
  }
  return true;
}

bool exports_cairn_plugin_store_static_store_open(exports_cairn_plugin_store_config_t *config,
                                                  exports_cairn_plugin_store_own_store_t *ret,
                                                  error_t *err) {
  bool has_path = false;
  for (size_t i = 0; i < config->len; i++) {
    storage_backend_string_t *key = &config->ptr[i].f0;
    if (key->len == 4 && memcmp(key->ptr, "path", 4) == 0) has_path = true;
  }
  exports_cairn_plugin_store_config_free(config);
  if (!has_path) {
    return fail_with(err, CAIRN_PLUGIN_TYPES_ERROR_INVALID_CONFIG,
                     "missing configuration key `path`: set it in the configuration file or with -o path=DIR");
  }
  struct exports_cairn_plugin_store_store_t *rep = calloc(1, sizeof *rep);
  rep->opened = 1;
  *ret = exports_cairn_plugin_store_store_new(rep);
  return true;
}

void exports_cairn_plugin_store_store_destructor(exports_cairn_plugin_store_store_t *rep) {
  free(rep);
}

void exports_cairn_plugin_store_method_store_guarantees(exports_cairn_plugin_store_borrow_store_t self,
                                                        exports_cairn_plugin_store_guarantees_t *ret) {
  (void)self;
  ret->atomic_create = true;
}

static bool make_dir(const char *path, error_t *err) {
  if (mkdir(path, 0755) == 0 || errno == EEXIST) return true;
  return fail(err, "cannot create", path);
}

bool exports_cairn_plugin_store_method_store_create(exports_cairn_plugin_store_borrow_store_t self, error_t *err) {
  (void)self;
  char path[256];
  snprintf(path, sizeof path, "%s/config", ROOT);
  struct stat st;
  if (stat(path, &st) == 0) {
    return fail_with(err, CAIRN_PLUGIN_TYPES_ERROR_ALREADY_EXISTS, "the directory already holds a repository");
  }
  for (kind_t k = EXPORTS_CAIRN_PLUGIN_STORE_KIND_KEY; k <= EXPORTS_CAIRN_PLUGIN_STORE_KIND_LOCK; k++) {
    snprintf(path, sizeof path, "%s/%s", ROOT, dir_of(k));
    if (!make_dir(path, err)) return false;
  }
  for (int i = 0; i < 256; i++) {
    snprintf(path, sizeof path, "%s/data/%02x", ROOT, i);
    if (!make_dir(path, err)) return false;
  }
  return true;
}

typedef struct {
  exports_cairn_plugin_store_entry_t *ptr;
  size_t len, cap;
} entries_t;

static void push(entries_t *list, const char *name, uint64_t size) {
  if (list->len == list->cap) {
    list->cap = list->cap ? list->cap * 2 : 64;
    list->ptr = realloc(list->ptr, list->cap * sizeof *list->ptr);
  }
  storage_backend_string_dup(&list->ptr[list->len].name, name);
  list->ptr[list->len].size = size;
  list->len++;
}

// Adds the files of `dir` (names not starting with '.'); a missing directory adds nothing.
static bool list_dir(entries_t *list, const char *dir, error_t *err) {
  DIR *d = opendir(dir);
  if (!d) return errno == ENOENT ? true : fail(err, "cannot list", dir);
  struct dirent *e;
  char path[512];
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) push(list, e->d_name, (uint64_t)st.st_size);
  }
  closedir(d);
  return true;
}

bool exports_cairn_plugin_store_method_store_list_files(exports_cairn_plugin_store_borrow_store_t self, kind_t kind,
                                                        exports_cairn_plugin_store_list_entry_t *ret, error_t *err) {
  (void)self;
  entries_t list = {0};
  char path[256];
  bool ok = true;
  if (kind == EXPORTS_CAIRN_PLUGIN_STORE_KIND_CONFIG) {
    struct stat st;
    snprintf(path, sizeof path, "%s/config", ROOT);
    if (stat(path, &st) == 0) push(&list, "config", (uint64_t)st.st_size);
  } else if (kind == EXPORTS_CAIRN_PLUGIN_STORE_KIND_PACK) {
    for (int i = 0; i < 256 && ok; i++) {
      snprintf(path, sizeof path, "%s/data/%02x", ROOT, i);
      ok = list_dir(&list, path, err);
    }
  } else {
    snprintf(path, sizeof path, "%s/%s", ROOT, dir_of(kind));
    ok = list_dir(&list, path, err);
  }
  if (!ok) {
    for (size_t i = 0; i < list.len; i++) storage_backend_string_free(&list.ptr[i].name);
    free(list.ptr);
    return false;
  }
  ret->ptr = list.ptr;
  ret->len = list.len;
  return true;
}

bool exports_cairn_plugin_store_method_store_read(exports_cairn_plugin_store_borrow_store_t self, kind_t kind,
                                                  storage_backend_string_t *name_arg, uint64_t offset,
                                                  uint64_t *maybe_length, storage_backend_list_u8_t *ret,
                                                  error_t *err) {
  (void)self;
  char *name = take(name_arg);
  char path[512];
  bool ok = false;
  int fd = -1;
  if (!path_of(path, sizeof path, kind, name, err)) goto out;
  fd = open(path, O_RDONLY);
  if (fd < 0) { fail(err, "cannot open", name); goto out; }
  struct stat st;
  if (fstat(fd, &st) != 0) { fail(err, "cannot read", name); goto out; }
  uint64_t size = (uint64_t)st.st_size;
  uint64_t start = maybe_length ? (offset < size ? offset : size) : 0;
  uint64_t want = maybe_length ? *maybe_length : size;
  if (want > size - start) want = size - start;
  ret->ptr = malloc(want ? want : 1);
  ret->len = 0;
  while (ret->len < want) {
    ssize_t n = pread(fd, ret->ptr + ret->len, want - ret->len, (off_t)(start + ret->len));
    if (n < 0) { free(ret->ptr); fail(err, "cannot read", name); goto out; }
    if (n == 0) break;
    ret->len += (size_t)n;
  }
  ok = true;
out:
  if (fd >= 0) close(fd);
  free(name);
  return ok;
}

static bool write_all(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) return false;
    p += w;
    n -= (size_t)w;
  }
  return true;
}

bool exports_cairn_plugin_store_method_store_write(exports_cairn_plugin_store_borrow_store_t self, kind_t kind,
                                                   storage_backend_string_t *name_arg,
                                                   storage_backend_list_u8_t *data, error_t *err) {
  (void)self;
  static unsigned counter;
  char *name = take(name_arg);
  char path[512], temp[512];
  bool ok = false;
  if (!path_of(path, sizeof path, kind, name, err)) goto out;
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  const char *folder = kind == EXPORTS_CAIRN_PLUGIN_STORE_KIND_CONFIG ? "" : dir_of(kind);
  snprintf(temp, sizeof temp, "%s/%s/.tmp-%.8s-%lx%lx%x", ROOT, folder, name, (unsigned long)now.tv_sec,
           (unsigned long)now.tv_nsec, counter++);
  int fd = open(temp, O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0) { fail(err, "cannot create a temporary file for", name); goto out; }
  bool written = write_all(fd, data->ptr, data->len) && fsync(fd) == 0;
  int saved = errno;
  close(fd);
  if (!written) { errno = saved; fail(err, "cannot write", name); unlink(temp); goto out; }
  if (link(temp, path) != 0) { fail(err, "cannot store", name); unlink(temp); goto out; }
  unlink(temp);
  ok = true;
out:
  storage_backend_list_u8_free(data);
  free(name);
  return ok;
}

bool exports_cairn_plugin_store_method_store_remove(exports_cairn_plugin_store_borrow_store_t self, kind_t kind,
                                                    storage_backend_string_t *name_arg, error_t *err) {
  (void)self;
  char *name = take(name_arg);
  char path[512];
  bool ok = path_of(path, sizeof path, kind, name, err);
  if (ok && unlink(path) != 0) ok = fail(err, "cannot remove", name);
  free(name);
  return ok;
}
