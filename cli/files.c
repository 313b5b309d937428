/* files.c - the command's own output files (classes.json, run.conf, the SVG figures, a
 * model as a C array) are replaced whole or not at all: the new content goes into a
 * temporary file beside the target, is flushed to disk, and is then renamed over it.
 * A crash, a full disk, a file-size limit or a signal while writing leaves the old file
 * as it was (a run folder keeps resuming), never half of the new one. The library's own
 * files (models, checkpoints, ONNX) are written the same way by the library. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* Copy the current content of path (if it exists) to f: 0, or -1 (errno set). */
static int copy_existing(const char *path, FILE *f) {
  FILE *in = fopen(path, "rb");
  if (in == NULL) return errno == ENOENT ? 0 : -1;
  char buf[8192];
  size_t n;
  int rc = 0;
  while (rc == 0 && (n = fread(buf, 1, sizeof buf, in)) > 0)
    if (fwrite(buf, 1, n, f) != n) rc = -1;
  if (ferror(in)) rc = -1;
  fclose(in);
  return rc;
}

FILE *cli_file_open(cli_file *cf, const char *path, int keep) {
  cf->path = path;
  cf->file = NULL;
  int n = snprintf(cf->tmp, sizeof cf->tmp, "%s.tmp-%ld", path, (long)getpid());
  if (n < 0 || (size_t)n >= sizeof cf->tmp) {
    cli_error("cannot write %s: the path is too long", path);
    return NULL;
  }
  /* A file of this name is one this process left (the name holds its pid): replace it. */
  int fd = open(cf->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) {
    cli_error("cannot write %s: %s", path, strerror(errno));
    return NULL;
  }
  cf->file = fdopen(fd, "wb");
  if (cf->file == NULL) {
    cli_error("cannot write %s: %s", path, strerror(errno));
    close(fd);
    unlink(cf->tmp);
    return NULL;
  }
  if (keep && copy_existing(path, cf->file) != 0) {
    cli_error("cannot read %s: %s", path, strerror(errno));
    cli_file_abandon(cf);
    return NULL;
  }
  return cf->file;
}

void cli_file_abandon(cli_file *cf) {
  if (cf->file == NULL) return;
  fclose(cf->file);
  cf->file = NULL;
  unlink(cf->tmp);
}

/* fsync the folder holding path, so that the rename survives a crash (best effort: some
 * file systems refuse to sync a folder). */
static void sync_folder(const char *path) {
  char dir[PATH_MAX];
  const char *slash = strrchr(path, '/');
  if (slash == NULL) {
    strcpy(dir, ".");
  } else if (slash == path) {
    strcpy(dir, "/");
  } else {
    size_t len = (size_t)(slash - path);
    if (len >= sizeof dir) return;
    memcpy(dir, path, len);
    dir[len] = '\0';
  }
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)fsync(fd);
  close(fd);
}

int cli_file_commit(cli_file *cf) {
  FILE *f = cf->file;
  if (f == NULL) return EXIT_DATA;
  cf->file = NULL;
  int err = 0;
  if (fflush(f) != 0 || ferror(f)) err = errno ? errno : EIO;
  if (!err && fsync(fileno(f)) != 0 && errno != EINVAL) err = errno;
  if (fclose(f) != 0 && !err) err = errno ? errno : EIO;
  if (!err && rename(cf->tmp, cf->path) != 0) err = errno;
  if (err) {
    unlink(cf->tmp);
    cli_error("cannot write %s: %s (left unchanged)", cf->path, strerror(err));
    return EXIT_DATA;
  }
  sync_folder(cf->path);
  return 0;
}
