/* data.c - a domain's images, from one of three layouts (docs/CLI.md, "Data"):
 *
 *   PATH/CLASS/FILE             one folder per class; a seeded, per-class share
 *                               (--test-fraction) is the test split
 *   PATH/train/CLASS/FILE       the same with the splits given (test/ optional)
 *   PATH/{train,test}-{images,labels}.idx   an IDX pair as `make data` writes, or
 *   PATH/{train,test}-{images,labels}.npy   the same as NumPy arrays (numpy.save)
 *
 * Every image is resized to the space's input by bench/bench_data.h's filter (area
 * average where an axis shrinks, bilinear where it grows), grey replicated to RGB and
 * alpha dropped; a space of one channel gets the mean of R, G and B. Classes are the
 * class folders in byte order of their names (labels 0, 1, ...); files are read in byte
 * order too, so a run sees the same images in the same order every time (its checkpoints
 * depend on that). */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench_data.h"
#include "cli.h"

typedef struct file_list {
  char **path;
  int32_t *label;
  int64_t n, cap;
} file_list;

static void list_free(file_list *l) {
  for (int64_t i = 0; i < l->n; i++) free(l->path[i]);
  free(l->path);
  free(l->label);
  memset(l, 0, sizeof *l);
}

static int list_add(file_list *l, const char *path, int32_t label) {
  if (l->n == l->cap) {
    int64_t cap = l->cap ? 2 * l->cap : 256;
    char **p = realloc(l->path, sizeof(char *) * (size_t)cap);
    if (p) l->path = p;
    int32_t *y = realloc(l->label, sizeof(int32_t) * (size_t)cap);
    if (y) l->label = y;
    if (!p || !y) return 1;
    l->cap = cap;
  }
  if (!(l->path[l->n] = strdup(path))) return 1;
  l->label[l->n++] = label;
  return 0;
}

/* a/b into out; 1 if it does not fit (such a path is skipped with a message, never cut). */
static int join(char *out, size_t cap, const char *a, const char *b) {
  int n = snprintf(out, cap, "%s/%s", a, b);
  if (n >= 0 && (size_t)n < cap) return 0;
  cli_error("a path longer than %zu bytes: %s/%s", cap - 1, a, b);
  return 1;
}

static int is_dir(const char *path) {
  struct stat s;
  return stat(path, &s) == 0 && S_ISDIR(s.st_mode);
}

static int exists(const char *path) {
  struct stat s;
  return stat(path, &s) == 0;
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The entries of a folder that are folders (dirs = 1) or regular files (dirs = 0), hidden
 * ones (".name") left out, sorted. *names malloc'ed. Returns the count, or -1. */
static int64_t folder_entries(const char *dir, int dirs, char ***names) {
  DIR *d = opendir(dir);
  *names = NULL;
  if (!d) return -1;
  int64_t n = 0, cap = 0;
  char path[4096];
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    struct stat s;
    if (e->d_name[0] == '.') continue;
    if (join(path, sizeof path, dir, e->d_name) || stat(path, &s) != 0 || (dirs ? !S_ISDIR(s.st_mode) : !S_ISREG(s.st_mode))) continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      char **grown = realloc(*names, sizeof(char *) * (size_t)cap);
      if (!grown) break;
      *names = grown;
    }
    if (((*names)[n] = strdup(e->d_name)) == NULL) break;
    n++;
  }
  closedir(d);
  if (n > 0) qsort(*names, (size_t)n, sizeof(char *), by_name);
  return n;
}

int64_t cli_folder_files(const char *dir, char ***paths) {
  char **names;
  int64_t n = folder_entries(dir, 0, &names);
  *paths = NULL;
  if (n < 0) return -1;
  int64_t made = 0;
  char **out = n > 0 ? malloc(sizeof(char *) * (size_t)n) : NULL;
  size_t dlen = strlen(dir);
  while (dlen > 1 && dir[dlen - 1] == '/') dlen--; /* "shots/" gives "shots/a.png" */
  const char *sep = dlen > 0 && dir[dlen - 1] == '/' ? "" : "/";
  for (; out && made < n; made++) {
    size_t len = dlen + strlen(names[made]) + 2;
    if ((out[made] = malloc(len)) == NULL) break;
    snprintf(out[made], len, "%.*s%s%s", (int)dlen, dir, sep, names[made]);
  }
  for (int64_t i = 0; i < n; i++) free(names[i]);
  free(names);
  if (made < n) { /* out of memory */
    for (int64_t i = 0; out && i < made; i++) free(out[i]);
    free(out);
    errno = ENOMEM;
    return -1;
  }
  *paths = out;
  return n;
}

/* The label of a class folder's name: its index in names, or -1. */
static int32_t label_of(char **names, int32_t count, const char *name) {
  for (int32_t i = 0; i < count; i++)
    if (strcmp(names[i], name) == 0) return i;
  return -1;
}

/* The files of dir/CLASS/ for every class folder. When dom->class_names is set (the
 * training classes, or a model's), a folder is labelled by its name in it, and a folder
 * not in it is an error; else the folders found become dom's classes. */
static int scan_classes(cli_domain *dom, const char *dir, file_list *out) {
  char **folders;
  int64_t nf = folder_entries(dir, 1, &folders);
  int rc = 0;
  if (nf < 0) {
    cli_error("domain %s: cannot read the folder %s: %s", dom->name, dir, strerror(errno));
    return EXIT_DATA;
  }
  if (!dom->class_names) {
    if (nf > 65535) {
      cli_error("domain %s: %s has %lld class folders (at most 65535)", dom->name, dir, (long long)nf);
      rc = EXIT_DATA;
      goto done;
    }
    dom->class_names = folders;
    dom->classes = (int32_t)nf;
    folders = NULL;
  }
  for (int64_t c = 0; !rc && c < nf; c++) {
    const char *cls = folders ? folders[c] : dom->class_names[c];
    int32_t label = label_of(dom->class_names, dom->classes, cls);
    char sub[4096], file[4096];
    char **files = NULL;
    if (label < 0) {
      cli_error("domain %s: %s/%s is not one of the domain's classes", dom->name, dir, cls);
      rc = EXIT_DATA;
      break;
    }
    int64_t n = join(sub, sizeof sub, dir, cls) ? 0 : folder_entries(sub, 0, &files);
    for (int64_t i = 0; i < n; i++) {
      if (!rc && !join(file, sizeof file, sub, files[i]) && list_add(out, file, label)) rc = EXIT_LIBRARY;
      free(files[i]);
    }
    free(files);
  }
done:
  for (int64_t i = 0; folders && i < nf; i++) free(folders[i]);
  free(folders);
  return rc;
}

/* ---- The test split of a domain that has none: per class, seeded -------------------- */

static uint64_t splitmix64(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* Mark round(fraction x n_c) images of every class c as test (is_test[i] = 1), at most
 * n_c - 1: a shuffle of the class's images by the seed (and the class), in file order. */
static int split_marks(const int32_t *labels, int64_t n, int32_t classes, double fraction,
                       uint64_t seed, uint8_t *is_test) {
  int64_t *idx = malloc(sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
  if (!idx) return 1;
  memset(is_test, 0, (size_t)n);
  for (int32_t c = 0; c < classes; c++) {
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
      if (labels[i] == c) idx[m++] = i;
    uint64_t state = seed ^ (0x5DEECE66Dull * (uint64_t)(c + 1));
    for (int64_t i = m - 1; i > 0; i--) { /* Fisher-Yates */
      int64_t j = (int64_t)(splitmix64(&state) % (uint64_t)(i + 1)), t = idx[i];
      idx[i] = idx[j];
      idx[j] = t;
    }
    int64_t take = (int64_t)floor(fraction * (double)m + 0.5);
    if (take > m - 1) take = m - 1;
    for (int64_t i = 0; i < take; i++) is_test[idx[i]] = 1;
  }
  free(idx);
  return 0;
}

/* ---- Decoding and resizing -------------------------------------------------------- */

int cli_data_load_file(const char *path, const cli_data_spec *spec, uint8_t *dst, char *err,
                       size_t cap) {
  uint8_t *px = NULL, *rgb = NULL;
  int64_t h, w, c;
  bench_taps tx = {0}, ty = {0};
  float *tmp = NULL;
  int rc = 1;
  if (cli_image_decode(path, &px, &h, &w, &c, err, cap)) return 1;
  size_t out = (size_t)(spec->height * spec->width);
  tmp = malloc(sizeof(float) * (size_t)(h * spec->width * 3));
  rgb = spec->channels == 3 ? dst : malloc(out * 3);
  if (!tmp || !rgb || bench_taps_make(w, spec->width, &tx) || bench_taps_make(h, spec->height, &ty)) {
    snprintf(err, cap, "%s: out of memory", path);
    goto done;
  }
  bench_resample(px, h, w, c, &tx, &ty, spec->height, spec->width, tmp, rgb);
  if (spec->channels == 1) /* one channel: the mean of R, G, B */
    for (size_t i = 0; i < out; i++)
      dst[i] = (uint8_t)((rgb[3 * i] + rgb[3 * i + 1] + rgb[3 * i + 2] + 1) / 3);
  rc = 0;
done:
  if (rgb != dst) free(rgb);
  bench_taps_free(&tx);
  bench_taps_free(&ty);
  free(tmp);
  free(px);
  return rc;
}

/* Decode the listed files (those with mark == want, or all when marks is NULL) into out.
 * A bad file stops with its message, or with --skip-bad is counted and left out. */
static int decode_list(cli_domain *dom, const file_list *l, const uint8_t *marks, int want,
                       const cli_data_spec *spec, cli_images *out) {
  size_t pixels = (size_t)(spec->height * spec->width * spec->channels);
  int64_t n = 0;
  for (int64_t i = 0; i < l->n; i++) n += !marks || marks[i] == want;
  out->x = malloc(pixels * (size_t)(n > 0 ? n : 1));
  out->y = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
  out->n = 0;
  if (!out->x || !out->y) {
    cli_error("domain %s: out of memory for %lld images", dom->name, (long long)n);
    return EXIT_LIBRARY;
  }
  for (int64_t i = 0; i < l->n; i++) {
    char err[4200];
    if (cli_signal_caught()) return EXIT_INTERRUPTED + cli_signal_caught(); /* while loading */
    if (marks && marks[i] != want) continue;
    if (cli_data_load_file(l->path[i], spec, out->x + pixels * (size_t)out->n, err, sizeof err)) {
      if (!spec->skip_bad) {
        cli_error("domain %s: %s (--skip-bad skips such files)", dom->name, err);
        return EXIT_DATA;
      }
      if (!spec->quiet) cli_error("skipped %s", err);
      dom->skipped++;
      continue;
    }
    out->y[out->n++] = l->label[i];
  }
  return 0;
}

/* Every class needs a training image. */
static int check_classes(const cli_domain *dom, const char *dir) {
  if (dom->classes < 2) {
    cli_error("domain %s: %s has %d class folder%s; a domain needs at least 2", dom->name, dir,
              (int)dom->classes, dom->classes == 1 ? "" : "s");
    return EXIT_DATA;
  }
  for (int32_t c = 0; c < dom->classes; c++) {
    int64_t count = 0;
    for (int64_t i = 0; i < dom->train.n; i++) count += dom->train.y[i] == c;
    if (count == 0) {
      cli_error("domain %s: class %s (%s/%s) has no %simages", dom->name, dom->class_names[c], dir,
                dom->class_names[c], dom->skipped ? "readable " : "");
      return EXIT_DATA;
    }
  }
  return 0;
}

static int load_folders(cli_domain *dom, const cli_data_spec *spec, int train_too) {
  char train_dir[4096], test_dir[4096];
  file_list train = {0}, test = {0};
  uint8_t *marks = NULL;
  int given = 0, rc;
  snprintf(train_dir, sizeof train_dir, "%s/train", dom->path);
  snprintf(test_dir, sizeof test_dir, "%s/test", dom->path);
  if (is_dir(train_dir)) { /* PATH/train/CLASS (and PATH/test/CLASS) */
    given = is_dir(test_dir);
  } else {
    snprintf(train_dir, sizeof train_dir, "%s", dom->path);
  }
  if ((rc = scan_classes(dom, train_dir, &train)) != 0) goto done;
  if (given) {
    if ((rc = scan_classes(dom, test_dir, &test)) != 0) goto done;
  } else if (spec->test_fraction > 0 && train.n > 0) {
    if (!(marks = malloc((size_t)train.n)) ||
        split_marks(train.label, train.n, dom->classes, spec->test_fraction, spec->seed, marks)) {
      rc = EXIT_LIBRARY;
      goto done;
    }
  }
  if (train_too && (rc = decode_list(dom, &train, marks, 0, spec, &dom->train)) != 0) goto done;
  if (given) rc = decode_list(dom, &test, NULL, 0, spec, &dom->test);
  else if (marks) rc = decode_list(dom, &train, marks, 1, spec, &dom->test);
  if (rc == 0 && train_too) rc = check_classes(dom, train_dir);
done:
  list_free(&train);
  list_free(&test);
  free(marks);
  return rc;
}

/* ---- IDX: bench/bench_data.h reads and resizes, to RGB ------------------------------ */

/* An RGB split into the space's channels (3: as is; 1: the mean). */
static int from_rgb(const bench_split *s, const cli_data_spec *spec, cli_images *out) {
  size_t pixels = (size_t)(spec->height * spec->width);
  out->n = s->n;
  out->y = malloc(sizeof(int32_t) * (size_t)(s->n > 0 ? s->n : 1));
  out->x = malloc(pixels * (size_t)spec->channels * (size_t)(s->n > 0 ? s->n : 1));
  if (!out->x || !out->y) return EXIT_LIBRARY;
  memcpy(out->y, s->y, sizeof(int32_t) * (size_t)s->n);
  if (spec->channels == 3) memcpy(out->x, s->x, pixels * 3 * (size_t)s->n);
  else
    for (size_t i = 0; i < pixels * (size_t)s->n; i++)
      out->x[i] = (uint8_t)((s->x[3 * i] + s->x[3 * i + 1] + s->x[3 * i + 2] + 1) / 3);
  return 0;
}

/* Keep the images whose mark is `want`. */
static void keep_marked(cli_images *im, const uint8_t *marks, int want, size_t pixels) {
  int64_t k = 0;
  for (int64_t i = 0; i < im->n; i++) {
    if (marks[i] != want) continue;
    memmove(im->x + pixels * (size_t)k, im->x + pixels * (size_t)i, pixels);
    im->y[k++] = im->y[i];
  }
  im->n = k;
}

static int load_idx(cli_domain *dom, const cli_data_spec *spec, int train_too) {
  char err[4200], test_file[4096];
  bench_split train = {0}, test = {0};
  int rc = EXIT_DATA;
  snprintf(test_file, sizeof test_file, "%s/test-images.idx", dom->path);
  int has_test = exists(test_file);
  snprintf(test_file, sizeof test_file, "%s/test-images.npy", dom->path);
  has_test = has_test || exists(test_file);
  /* the training split is needed for the classes, or for a test split made from it */
  if ((train_too || !has_test || !spec->known_classes) &&
      bench_load_split(dom->path, ".", "train", spec->height, spec->width, &train, err, sizeof err)) {
    cli_error("domain %s: %s", dom->name, err);
    goto done;
  }
  if (has_test &&
      bench_load_split(dom->path, ".", "test", spec->height, spec->width, &test, err, sizeof err)) {
    cli_error("domain %s: %s", dom->name, err);
    goto done;
  }
  int32_t classes = spec->known_classes ? spec->known_count
                                        : bench_classes(dom->path, ".", &train, &test, err, sizeof err);
  if (classes == 0) {
    cli_error("domain %s: %s", dom->name, err);
    goto done;
  }
  dom->classes = classes;
  if (!(dom->class_names = calloc((size_t)classes, sizeof(char *)))) goto oom;
  for (int32_t c = 0; c < classes; c++) { /* IDX classes have numbers, not names */
    char num[16];
    snprintf(num, sizeof num, "%d", (int)c);
    if (!(dom->class_names[c] = strdup(num))) goto oom;
  }
  size_t pixels = (size_t)(spec->height * spec->width * spec->channels);
  if (has_test) {
    if (from_rgb(&test, spec, &dom->test)) goto oom;
    if (train_too && from_rgb(&train, spec, &dom->train)) goto oom;
  } else { /* split the training images: the marks pick each one's side */
    uint8_t *marks = malloc((size_t)(train.n > 0 ? train.n : 1));
    if (!marks || split_marks(train.y, train.n, classes, spec->test_fraction, spec->seed, marks) ||
        from_rgb(&train, spec, &dom->test) || (train_too && from_rgb(&train, spec, &dom->train))) {
      free(marks);
      goto oom;
    }
    keep_marked(&dom->test, marks, 1, pixels);
    if (train_too) keep_marked(&dom->train, marks, 0, pixels);
    free(marks);
  }
  for (int64_t i = 0; i < dom->test.n; i++)
    if (dom->test.y[i] >= classes) {
      cli_error("domain %s: test label %d of image %lld is not one of the %d classes", dom->name,
                (int)dom->test.y[i], (long long)i, (int)classes);
      goto done;
    }
  rc = train_too ? check_classes(dom, dom->path) : 0;
  goto done;
oom:
  cli_error("domain %s: out of memory", dom->name);
  rc = EXIT_LIBRARY;
done:
  bench_split_free(&train);
  bench_split_free(&test);
  return rc;
}

int cli_data_load(cli_domain *dom, const cli_data_spec *spec, int train_too) {
  char idx[4096];
  if (spec->known_classes) { /* labels by the model's class names */
    dom->classes = spec->known_count;
    dom->class_names = calloc((size_t)spec->known_count, sizeof(char *));
    for (int32_t c = 0; dom->class_names && c < spec->known_count; c++)
      if (!(dom->class_names[c] = strdup(spec->known_classes[c]))) {
        cli_error("out of memory");
        return EXIT_LIBRARY;
      }
  }
  if (!is_dir(dom->path)) {
    cli_error("domain %s: %s is not a folder", dom->name, dom->path);
    return EXIT_DATA;
  }
  char npy[4096];
  snprintf(idx, sizeof idx, "%s/train-images.idx", dom->path);
  snprintf(npy, sizeof npy, "%s/train-images.npy", dom->path);
  if (exists(idx) || exists(npy)) {
    cli_names_free(dom->class_names, dom->classes);
    dom->class_names = NULL;
    return load_idx(dom, spec, train_too);
  }
  return load_folders(dom, spec, train_too);
}

void cli_domain_free(cli_domain *dom) {
  cli_names_free(dom->class_names, dom->classes);
  free(dom->train.x);
  free(dom->train.y);
  free(dom->test.x);
  free(dom->test.y);
  memset(dom, 0, sizeof *dom);
}
