/* file.c - whole-file read with a size bound, and atomic replace (write a temporary,
 * fsync, rename), for the container files of serial.h.
 *
 * Portability: this is the library's one POSIX file (open with O_EXCL, fsync, fstat,
 * getpid, unlink, opendir, kill; POSIX.1-2008). A Windows port would replace just these
 * functions (_open/_commit, MoveFileEx with MOVEFILE_REPLACE_EXISTING |
 * MOVEFILE_WRITE_THROUGH). */
#define _POSIX_C_SOURCE 200809L

#include "common/serial.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* ---- Files (POSIX) ----------------------------------------------------------------- */
static void errno_text(int err, char *buf, size_t cap) {
  /* XSI strerror_r (we ask for POSIX, not GNU): thread-safe, unlike strerror. */
  if (strerror_r(err, buf, cap) != 0) snprintf(buf, cap, "error %d", err);
}

/* Read a file whole; with a kind, its header is checked as soon as it has arrived and
 * its declared length becomes the bound (so a device or pipe that never ends, or
 * streams something else, fails after one small read). */
static mpnas_status read_path(mpnas_context *ctx, const char *path,
                              const mpnas__file_kind *kind, size_t max_bytes,
                              unsigned char **data, size_t *len) {
  char why[128];
  *data = NULL;
  *len = 0;
  if (path == NULL || path[0] == '\0')
    return mpnas__fail(ctx, MPNAS_E_INVALID_ARGUMENT, "empty file path");
  int fd;
  do fd = open(path, O_RDONLY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    errno_text(errno, why, sizeof why);
    return mpnas__fail(ctx, MPNAS_E_IO, "cannot open '%s': %s", path, why);
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    errno_text(errno, why, sizeof why);
    close(fd);
    return mpnas__fail(ctx, MPNAS_E_IO, "cannot stat '%s': %s", path, why);
  }
  if (S_ISDIR(st.st_mode)) {
    close(fd);
    return mpnas__fail(ctx, MPNAS_E_IO, "'%s' is a directory", path);
  }
  if (max_bytes > SIZE_MAX - 1) max_bytes = SIZE_MAX - 1;
  /* A regular file's size is known: refuse before allocating, and allocate one spare
   * byte so a file that grows while we read is noticed. Other files (pipes, devices)
   * grow the buffer, never beyond the bound + 1 nor twice what has arrived. */
  size_t cap;
  if (S_ISREG(st.st_mode)) {
    if (st.st_size < 0 || (uintmax_t)st.st_size > (uintmax_t)max_bytes) {
      close(fd);
      return mpnas__fail(ctx, MPNAS_E_CORRUPT,
                         "'%s' is %lld bytes, larger than the limit of %zu bytes for this "
                         "kind of file%s",
                         path, (long long)st.st_size, max_bytes,
                         kind != NULL ? " (MPNAS_CONTEXT_MAX_FILE_BYTES)" : "");
    }
    cap = (size_t)st.st_size + 1;
  } else {
    cap = max_bytes + 1 < 65536 ? max_bytes + 1 : 65536;
  }
  unsigned char *buf = mpnas__malloc(ctx, cap);
  if (buf == NULL) {
    close(fd);
    return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "cannot allocate %zu bytes to read '%s'",
                       cap, path);
  }
  mpnas_status status = MPNAS_OK;
  int peeked = kind == NULL, stream = !S_ISREG(st.st_mode);
  size_t n = 0;
  for (;;) {
    if (!peeked && n >= MPNAS__SERIAL_HEADER_BYTES) {
      uint64_t declared = 0;
      peeked = 1;
      status = mpnas__reader_declared_length(ctx, kind, buf, n, &declared);
      if (status != MPNAS_OK) break;
      if (declared > (uint64_t)max_bytes) {
        status = mpnas__fail(ctx, MPNAS_E_CORRUPT,
                             "'%s' declares %llu bytes, more than the limit of %zu bytes "
                             "(MPNAS_CONTEXT_MAX_FILE_BYTES)",
                             path, (unsigned long long)declared, max_bytes);
        break;
      }
      max_bytes = (size_t)declared; /* more than that is trailing data: stop at + 1 */
    }
    /* A stream is read up to its declared length only: its writer need not close it. */
    int whole = kind != NULL && peeked && stream;
    if (whole && n >= max_bytes) break;
    if (n == cap) {
      if (cap > max_bytes) {
        if (kind != NULL) break; /* past the declared length: the reader reports it */
        status = mpnas__fail(ctx, MPNAS_E_CORRUPT,
                             "'%s' is larger than the limit of %zu bytes for this kind of "
                             "file",
                             path, max_bytes);
        break;
      }
      size_t grown_cap = cap <= (max_bytes + 1) / 2 ? cap * 2 : max_bytes + 1;
      unsigned char *grown = mpnas__malloc(ctx, grown_cap);
      if (grown == NULL) {
        status = mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "cannot allocate %zu bytes to read '%s'",
                             grown_cap, path);
        break;
      }
      memcpy(grown, buf, n);
      mpnas__free(ctx, buf);
      buf = grown;
      cap = grown_cap;
    }
    size_t want = cap - n;
    if (whole && want > max_bytes - n) want = max_bytes - n;
    if (want > ((size_t)1 << 30)) want = (size_t)1 << 30; /* some systems cap one read */
    ssize_t got = read(fd, buf + n, want);
    if (got < 0) {
      if (errno == EINTR) continue;
      errno_text(errno, why, sizeof why);
      status = mpnas__fail(ctx, MPNAS_E_IO, "cannot read '%s': %s", path, why);
      break;
    }
    if (got == 0) break;
    n += (size_t)got;
  }
  close(fd);
  if (status == MPNAS_OK && kind == NULL && n > max_bytes) /* a file that grew meanwhile */
    status = mpnas__fail(ctx, MPNAS_E_CORRUPT,
                         "'%s' is larger than the limit of %zu bytes for this kind of file",
                         path, max_bytes);
  if (status != MPNAS_OK) {
    mpnas__free(ctx, buf);
    return status;
  }
  *data = buf;
  *len = n;
  return MPNAS_OK;
}

mpnas_status mpnas__read_file(mpnas_context *ctx, const char *path, size_t max_bytes,
                              unsigned char **data, size_t *len) {
  return read_path(ctx, path, NULL, max_bytes, data, len);
}

mpnas_status mpnas__read_container(mpnas_context *ctx, const char *path,
                                   const mpnas__file_kind *kind, unsigned char **data,
                                   size_t *len) {
  uint64_t limit = ctx->max_file_bytes;
  return read_path(ctx, path, kind, limit > SIZE_MAX ? SIZE_MAX : (size_t)limit, data, len);
}

/* fsync the directory holding `path` so the rename itself survives a crash. Best
 * effort: some file systems refuse fsync on a directory, and the data is already safe
 * in the file either way. */
static void sync_parent_dir(mpnas_context *ctx, const char *path, char *scratch) {
  const char *slash = strrchr(path, '/');
  const char *dir = ".";
  if (slash == path) {
    dir = "/";
  } else if (slash != NULL) {
    size_t n = (size_t)(slash - path);
    memcpy(scratch, path, n);
    scratch[n] = '\0';
    dir = scratch;
  }
  int fd = open(dir, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  if (fsync(fd) != 0) mpnas__log(ctx, MPNAS_LOG_DEBUG, "fsync of directory '%s' failed", dir);
  close(fd);
}

/* The decimal number at *p (at most 10 digits, so it fits a long) and where it ends;
 * -1 if there is none. */
static long parse_decimal(const char **p) {
  long v = 0;
  int digits = 0;
  while (**p >= '0' && **p <= '9' && digits < 10) v = v * 10 + (*(*p)++ - '0'), digits++;
  return digits > 0 && !(**p >= '0' && **p <= '9') ? v : -1;
}

/* Remove what earlier saves of this same `path` left behind when their process died
 * between creating and renaming the temporary file (kill -9, a crash): files named
 * exactly "<name>.tmp.<pid>.<n>" next to it whose pid no longer runs (kill(pid, 0)
 * fails with ESRCH). Another target's files and a live process's are never touched.
 * Best effort: nothing here can fail the save. `scratch` holds strlen(path) + 64 bytes. */
static void remove_stale_temps(const char *path, char *scratch) {
  const char *slash = strrchr(path, '/');
  const char *base = slash != NULL ? slash + 1 : path;
  size_t dlen = slash == NULL ? 0 : slash == path ? 1 : (size_t)(slash - path);
  size_t blen = strlen(base);
  if (dlen > 0) memcpy(scratch, path, dlen);
  else scratch[dlen++] = '.';
  scratch[dlen] = '\0';
  DIR *dir = opendir(scratch);
  if (dir == NULL) return;
  long self = (long)getpid();
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) {
    const char *p = e->d_name;
    if (strncmp(p, base, blen) != 0 || strncmp(p + blen, ".tmp.", 5) != 0) continue;
    p += blen + 5;
    long pid = parse_decimal(&p);
    if (pid <= 0 || pid == self || (long)(pid_t)pid != pid || *p++ != '.' ||
        parse_decimal(&p) < 0 || *p != '\0')
      continue;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours to judge */
    /* The name matched at most blen + 5 + 2 * 10 + 1 bytes: it fits scratch. */
    snprintf(scratch + dlen, strlen(path) + 64 - dlen, "/%s", e->d_name);
    (void)unlink(scratch);
    scratch[dlen] = '\0';
  }
  closedir(dir);
}

mpnas_status mpnas__write_file_atomic(mpnas_context *ctx, const char *path,
                                      const void *data, size_t len) {
  char why[128];
  if (path == NULL || path[0] == '\0')
    return mpnas__fail(ctx, MPNAS_E_INVALID_ARGUMENT, "empty file path");
  if (data == NULL && len > 0)
    return mpnas__fail(ctx, MPNAS_E_INVALID_ARGUMENT, "NULL data of %zu bytes", len);
  size_t plen = strlen(path);
  size_t tcap = plen + 64;
  char *tmp = mpnas__malloc(ctx, tcap);
  if (tmp == NULL)
    return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "cannot allocate a path for '%s'", path);
  remove_stale_temps(path, tmp); /* before writing: they may hold the space we need */

  /* O_EXCL: never write through someone else's temp file or a planted symlink. The
   * pid keeps processes apart; the counter steps over leftovers of a crashed process
   * that had the same pid and over another thread of ours writing the same path. */
  int fd = -1;
  int err = 0;
  for (int attempt = 0; attempt < 1000 && fd < 0; attempt++) {
    snprintf(tmp, tcap, "%s.tmp.%ld.%d", path, (long)getpid(), attempt);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) {
      err = errno;
      if (err == EINTR) attempt--;
      else if (err != EEXIST) break;
    }
  }
  if (fd < 0) {
    errno_text(err, why, sizeof why);
    mpnas_status s = mpnas__fail(ctx, MPNAS_E_IO,
                                 "cannot create a temporary file next to '%s': %s", path,
                                 why);
    mpnas__free(ctx, tmp);
    return s;
  }

  const char *step = "write";
  struct stat st;
  /* Keep the permissions of the file being replaced (best effort). */
  if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) (void)fchmod(fd, st.st_mode & 07777);
  const unsigned char *p = data;
  size_t done = 0;
  while (done < len) {
    size_t want = len - done;
    if (want > ((size_t)1 << 30)) want = (size_t)1 << 30;
    ssize_t put = write(fd, p + done, want);
    if (put < 0) {
      if (errno == EINTR) continue;
      err = errno;
      goto fail;
    }
    if (put == 0) {
      err = ENOSPC;
      goto fail;
    }
    done += (size_t)put;
  }
  /* The data must be on disk before the rename makes it the file: otherwise a crash
   * could leave the new name pointing at empty or partial contents. */
  step = "sync";
  while (fsync(fd) != 0) {
    if (errno != EINTR) {
      err = errno;
      goto fail;
    }
  }
  step = "close";
  if (close(fd) != 0) {
    fd = -1;
    err = errno;
    goto fail;
  }
  fd = -1;
  step = "rename";
  if (rename(tmp, path) != 0) {
    err = errno;
    goto fail;
  }
  sync_parent_dir(ctx, path, tmp); /* tmp is longer than the directory part: reuse it */
  mpnas__free(ctx, tmp);
  return MPNAS_OK;

fail:
  if (fd >= 0) close(fd);
  unlink(tmp);
  errno_text(err, why, sizeof why);
  {
    mpnas_status s = mpnas__fail(ctx, MPNAS_E_IO, "cannot %s '%s' (via '%s'): %s; the "
                                 "original file is unchanged",
                                 step, path, tmp, why);
    mpnas__free(ctx, tmp);
    return s;
  }
}

/* The container a writer holds, to `path` (serial.h). */
mpnas_status mpnas__writer_to_file(mpnas__writer *w, const char *path) {
  const unsigned char *data;
  size_t len;
  mpnas_status s = mpnas__writer_finish(w, &data, &len);
  if (s != MPNAS_OK) return s;
  return mpnas__write_file_atomic(w->ctx, path, data, len);
}
