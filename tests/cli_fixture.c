/* cli_fixture.c - the image data of tests/test_cli.sh, written with libpng and libjpeg.
 *
 *   cli_fixture OUT
 *
 * writes three small domains whose classes a few training steps can begin to tell apart:
 *   OUT/shapes/{circle,square,stripes}/NN.{png,jpg}   one folder per class (no splits);
 *       colour PNG (RGB and RGBA) and JPEG, 18..70 pixels a side, not square
 *   OUT/tones/{train,test}/{blue,grey,red}/...          given splits; the grey class is
 *       grey PNG (8- and 16-bit) and grey JPEG, the others colour
 *   OUT/digits/{train,test}-{images,labels}.idx         an IDX pair, 28x28 grey
 *   OUT/digits_npy/{train,test}-{images,labels}.npy     the same as .npy (int64 labels)
 *   OUT/png16/{grey8,grey16}.png    one flat grey 16x16 image, 8-bit 128 and 16-bit
 *       0x8080 without a gAMA or sRGB chunk (the same picture: they must read alike)
 * Deterministic (a fixed random sequence). Built only with both libraries; without them
 * it says so and exits with 77 (tests/test_cli.sh then skips). */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#if defined(MPNAS_CLI_PNG) && defined(MPNAS_CLI_JPEG)
#include <jpeglib.h>
#include <png.h>

static uint64_t state = 42;
static int rnd(int n) { /* 0..n-1 */
  state = state * 6364136223846793005ull + 1442695040888963407ull;
  return (int)((state >> 33) % (uint64_t)n);
}

static void mk(const char *dir) { mkdir(dir, 0777); }

/* snprintf into a path buffer; a path that does not fit stops the program. */
static void fmt(char *out, size_t cap, const char *f, ...) {
  va_list ap;
  va_start(ap, f);
  int n = vsnprintf(out, cap, f, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= cap) {
    fprintf(stderr, "cli_fixture: path too long\n");
    exit(1);
  }
}

/* An image of class `cls` of a domain: h x w x 3 RGB. shapes: 0 circle, 1 square,
 * 2 stripes (random colours, position, size); tones: 0 blue, 1 grey, 2 red noise. */
static void draw(int domain, int cls, int h, int w, uint8_t *rgb) {
  uint8_t bg[3], fg[3];
  for (int k = 0; k < 3; k++) {
    bg[k] = (uint8_t)(rnd(100));
    fg[k] = (uint8_t)(155 + rnd(100));
  }
  int cy = h / 4 + rnd(h / 2 + 1), cx = w / 4 + rnd(w / 2 + 1), r = 3 + rnd((h < w ? h : w) / 4 + 1);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      uint8_t *p = rgb + 3 * (y * w + x);
      int on;
      if (domain == 0)
        on = cls == 0 ? (y - cy) * (y - cy) + (x - cx) * (x - cx) <= r * r
             : cls == 1 ? abs(y - cy) <= r && abs(x - cx) <= r
                        : (x * 8 / w) % 2 == 0;
      else
        on = 1;
      for (int k = 0; k < 3; k++) p[k] = on ? fg[k] : bg[k];
      if (domain == 1) {
        int base = 60 + rnd(140);
        p[0] = (uint8_t)(cls == 2 ? 150 + rnd(100) : base / 2);
        p[1] = (uint8_t)(base / 2);
        p[2] = (uint8_t)(cls == 0 ? 150 + rnd(100) : base / 2);
        if (cls == 1) p[0] = p[1] = p[2] = (uint8_t)base;
      }
    }
}

static int write_png(const char *path, const uint8_t *rgb, int h, int w, int mode) {
  /* mode 0: RGB, 1: RGBA (half-transparent alpha), 2: grey 8-bit, 3: grey 16-bit */
  png_image im;
  memset(&im, 0, sizeof im);
  im.version = PNG_IMAGE_VERSION;
  im.width = (png_uint_32)w;
  im.height = (png_uint_32)h;
  im.format = mode == 0 ? PNG_FORMAT_RGB : mode == 1 ? PNG_FORMAT_RGBA : mode == 2 ? PNG_FORMAT_GRAY
                                                                                  : PNG_FORMAT_LINEAR_Y;
  size_t n = (size_t)h * (size_t)w;
  uint8_t *buf = malloc(n * 4 * 2);
  if (!buf) return 1;
  for (size_t i = 0; i < n; i++) {
    if (mode == 0) memcpy(buf + 3 * i, rgb + 3 * i, 3);
    if (mode == 1) {
      memcpy(buf + 4 * i, rgb + 3 * i, 3);
      buf[4 * i + 3] = 128;
    }
    if (mode == 2) buf[i] = rgb[3 * i];
    if (mode == 3) ((uint16_t *)buf)[i] = (uint16_t)(rgb[3 * i] * 257);
  }
  int ok = png_image_write_to_file(&im, path, 0, buf, 0, NULL);
  free(buf);
  return !ok;
}

/* A flat grey side x side PNG with libpng's full API (the simplified one always writes
 * a gAMA chunk): 8-bit `v8`, or 16-bit `v16` when bits is 16; no gAMA, no sRGB. */
static int write_flat_png(const char *path, int side, int bits, unsigned v8, unsigned v16) {
  FILE *f = fopen(path, "wb");
  if (!f) return 1;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  uint8_t *row = malloc((size_t)side * 2);
  if (!png || !info || !row || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    free(row);
    fclose(f);
    return 1;
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, (png_uint_32)side, (png_uint_32)side, bits, PNG_COLOR_TYPE_GRAY,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int x = 0; x < side; x++) {
    if (bits == 16) {
      row[2 * x] = (uint8_t)(v16 >> 8); /* big-endian samples */
      row[2 * x + 1] = (uint8_t)(v16 & 0xff);
    } else {
      row[x] = (uint8_t)v8;
    }
  }
  for (int y = 0; y < side; y++) png_write_row(png, row);
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  free(row);
  return fclose(f) != 0;
}

static int write_jpeg(const char *path, const uint8_t *rgb, int h, int w, int grey) {
  FILE *f = fopen(path, "wb");
  if (!f) return 1;
  struct jpeg_compress_struct c;
  struct jpeg_error_mgr e;
  c.err = jpeg_std_error(&e);
  jpeg_create_compress(&c);
  jpeg_stdio_dest(&c, f);
  c.image_width = (JDIMENSION)w;
  c.image_height = (JDIMENSION)h;
  c.input_components = grey ? 1 : 3;
  c.in_color_space = grey ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, 92, TRUE);
  jpeg_start_compress(&c, TRUE);
  uint8_t *row = malloc((size_t)w * 3);
  for (int y = 0; row && y < h; y++) {
    for (int x = 0; x < w; x++)
      if (grey) row[x] = rgb[3 * (y * w + x)];
      else memcpy(row + 3 * x, rgb + 3 * (y * w + x), 3);
    JSAMPROW r = row;
    jpeg_write_scanlines(&c, &r, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  free(row);
  return fclose(f) != 0 || !row;
}

/* count images of one class into dir; format by index: PNG RGB, PNG RGBA, JPEG (grey
 * classes: PNG grey 8-bit, PNG grey 16-bit, JPEG grey). */
static int write_class(const char *dir, int domain, int cls, int count, int first) {
  int grey = domain == 1 && cls == 1;
  char path[1024];
  mk(dir);
  for (int i = 0; i < count; i++) {
    int h = 18 + rnd(53), w = 18 + rnd(53), kind = (first + i) % 3;
    uint8_t *rgb = malloc((size_t)h * (size_t)w * 3);
    if (!rgb) return 1;
    draw(domain, cls, h, w, rgb);
    fmt(path, sizeof path, "%s/%03d.%s", dir, first + i, kind == 2 ? "jpg" : "png");
    int rc = kind == 2 ? write_jpeg(path, rgb, h, w, grey) : write_png(path, rgb, h, w, grey ? kind + 2 : kind);
    free(rgb);
    if (rc) {
      fprintf(stderr, "cli_fixture: cannot write %s\n", path);
      return 1;
    }
  }
  return 0;
}

static int write_idx(const char *path, const uint8_t *data, int ndim, const int *dims) {
  FILE *f = fopen(path, "wb");
  if (!f) return 1;
  unsigned char head[4] = {0, 0, 8, (unsigned char)ndim};
  fwrite(head, 1, 4, f);
  size_t n = 1;
  for (int i = 0; i < ndim; i++) {
    unsigned char b[4] = {(unsigned char)(dims[i] >> 24), (unsigned char)(dims[i] >> 16),
                          (unsigned char)(dims[i] >> 8), (unsigned char)dims[i]};
    fwrite(b, 1, 4, f);
    n *= (size_t)dims[i];
  }
  fwrite(data, 1, n, f);
  return fclose(f) != 0;
}

/* numpy.save's format, version 1: magic, header length, a dict padded with spaces to a
 * multiple of 64 bytes with the newline, then the values; labels as int64 ('<i8'). */
static int write_npy(const char *path, const uint8_t *data, int ndim, const int *dims) {
  char header[256], shape[96] = "";
  size_t n = 1, at = 0;
  for (int i = 0; i < ndim; i++) {
    at += (size_t)snprintf(shape + at, sizeof shape - at, "%d,%s", dims[i], i + 1 < ndim ? " " : "");
    n *= (size_t)dims[i];
  }
  int len = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }",
                     ndim == 1 ? "<i8" : "|u1", shape);
  while ((10 + len + 1) % 64) header[len++] = ' ';
  header[len++] = '\n';
  FILE *f = fopen(path, "wb");
  if (!f) return 1;
  unsigned char head[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)len,
                            (unsigned char)(len >> 8)};
  fwrite(head, 1, 10, f);
  fwrite(header, 1, (size_t)len, f);
  for (size_t i = 0; i < n; i++) {
    if (ndim == 1) {
      unsigned char v[8] = {data[i], 0, 0, 0, 0, 0, 0, 0};
      fwrite(v, 1, 8, f);
    } else {
      fputc(data[i], f);
    }
  }
  return fclose(f) != 0;
}

/* 28x28 grey digits-like classes: 0 a horizontal bar, 1 a vertical bar, 2 a diagonal. */
static int write_digits(const char *dir, const char *npy_dir, const char *which, int n) {
  char path[1024];
  uint8_t *x = calloc((size_t)n, 28 * 28), *y = malloc((size_t)n);
  if (!x || !y) return 1;
  for (int i = 0; i < n; i++) {
    int c = i % 3, o = 6 + rnd(16);
    y[i] = (uint8_t)c;
    for (int a = 0; a < 28; a++)
      for (int t = -2; t <= 2; t++) {
        int r = c == 0 ? o + t : c == 1 ? a : a, col = c == 0 ? a : c == 1 ? o + t : a + t;
        if (r >= 0 && r < 28 && col >= 0 && col < 28) x[i * 784 + r * 28 + col] = (uint8_t)(200 + rnd(55));
      }
  }
  int dims[3] = {n, 28, 28}, rc;
  fmt(path, sizeof path, "%s/%s-images.idx", dir, which);
  rc = write_idx(path, x, 3, dims);
  fmt(path, sizeof path, "%s/%s-labels.idx", dir, which);
  rc |= write_idx(path, y, 1, dims);
  fmt(path, sizeof path, "%s/%s-images.npy", npy_dir, which);
  rc |= write_npy(path, x, 3, dims);
  fmt(path, sizeof path, "%s/%s-labels.npy", npy_dir, which);
  rc |= write_npy(path, y, 1, dims);
  free(x);
  free(y);
  return rc;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: cli_fixture OUT\n");
    return 1;
  }
  static const char *const shapes[] = {"circle", "square", "stripes"}, *const tones[] = {"blue", "grey", "red"};
  char dir[1024];
  const char *out = argv[1];
  int rc = 0;
  mk(out);
  fmt(dir, sizeof dir, "%s/shapes", out);
  mk(dir);
  for (int c = 0; c < 3 && !rc; c++) {
    fmt(dir, sizeof dir, "%s/shapes/%s", out, shapes[c]);
    rc = write_class(dir, 0, c, 24, 0);
  }
  const char *splits[] = {"train", "test"};
  fmt(dir, sizeof dir, "%s/tones", out);
  mk(dir);
  for (int s = 0; s < 2 && !rc; s++) {
    fmt(dir, sizeof dir, "%s/tones/%s", out, splits[s]);
    mk(dir);
    for (int c = 0; c < 3 && !rc; c++) {
      fmt(dir, sizeof dir, "%s/tones/%s/%s", out, splits[s], tones[c]);
      rc = write_class(dir, 1, c, s == 0 ? 18 : 6, s * 100);
    }
  }
  char npy_dir[1024];
  fmt(dir, sizeof dir, "%s/digits", out);
  fmt(npy_dir, sizeof npy_dir, "%s/digits_npy", out);
  mk(dir);
  mk(npy_dir);
  if (!rc)
    rc = write_digits(dir, npy_dir, "train", 60) || write_digits(dir, npy_dir, "test", 24);
  char file[1024];
  fmt(dir, sizeof dir, "%s/png16", out);
  mk(dir);
  fmt(file, sizeof file, "%s/grey8.png", dir);
  if (!rc) rc = write_flat_png(file, 16, 8, 128, 0);
  fmt(file, sizeof file, "%s/grey16.png", dir);
  if (!rc) rc = write_flat_png(file, 16, 16, 0, 0x8080);
  return rc;
}

#else
int main(void) {
  fprintf(stderr, "cli_fixture: built without libpng and libjpeg\n");
  return 77;
}
#endif
