/* image.c - decode PNG and JPEG files into 8-bit pixels.
 *
 * libpng and libjpeg(-turbo) are optional: the Makefile defines MPNAS_CLI_PNG /
 * MPNAS_CLI_JPEG when it finds them (pkg-config and a test link), and without one the
 * command still builds and says which format it lacks when it meets such a file. The
 * format is told by the file's first bytes, not by its name. */
#include <errno.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#ifdef MPNAS_CLI_PNG
#include <png.h>
#endif
#ifdef MPNAS_CLI_JPEG
#include <jpeglib.h>
#include <jerror.h>
#endif

/* Larger images are refused before anything is allocated for them (a 64 Mpixel RGBA
 * image is 256 MB). */
#define MAX_PIXELS ((int64_t)1 << 26)

const char *cli_image_formats(void) {
#if defined(MPNAS_CLI_PNG) && defined(MPNAS_CLI_JPEG)
  return "PNG JPEG";
#elif defined(MPNAS_CLI_PNG)
  return "PNG";
#elif defined(MPNAS_CLI_JPEG)
  return "JPEG";
#else
  return "";
#endif
}

const char *cli_image_missing_formats(void) {
#if defined(MPNAS_CLI_PNG) && defined(MPNAS_CLI_JPEG)
  return "";
#elif defined(MPNAS_CLI_PNG)
  return "JPEG";
#elif defined(MPNAS_CLI_JPEG)
  return "PNG";
#else
  return "PNG JPEG";
#endif
}

#if defined(MPNAS_CLI_PNG) || defined(MPNAS_CLI_JPEG)
static int too_large(int64_t h, int64_t w, const char *path, char *err, size_t cap) {
  if (h > 0 && w > 0 && h * w <= MAX_PIXELS) return 0;
  snprintf(err, cap, "%s: %lld x %lld pixels (at most %lld pixels are read)", path, (long long)w,
           (long long)h, (long long)MAX_PIXELS);
  return 1;
}
#endif

#ifdef MPNAS_CLI_PNG
/* libpng's simplified API: any bit depth, palette, grey, alpha, interlace. Grey without
 * alpha stays one channel; everything else becomes RGBA. */
static int decode_png(const char *path, uint8_t **pixels, int64_t *h, int64_t *w, int64_t *c,
                      char *err, size_t cap) {
  png_image im;
  memset(&im, 0, sizeof im);
  im.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&im, path)) {
    snprintf(err, cap, "%s: not a readable PNG image (%s)", path, im.message);
    png_image_free(&im);
    return 1;
  }
  /* 16-bit values without a gAMA or sRGB chunk are sRGB-encoded like 8-bit ones (libpng
   * would otherwise take them as linear and brighten them going to 8 bits: a 16-bit
   * grey 0x8080 read as 186, not 128) */
  im.flags |= PNG_IMAGE_FLAG_16BIT_sRGB;
  int grey = !(im.format & (PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA));
  im.format = grey ? PNG_FORMAT_GRAY : PNG_FORMAT_RGBA;
  if (too_large(im.height, im.width, path, err, cap)) {
    png_image_free(&im);
    return 1;
  }
  *pixels = malloc(PNG_IMAGE_SIZE(im));
  if (!*pixels) {
    snprintf(err, cap, "%s: out of memory", path);
    png_image_free(&im);
    return 1;
  }
  if (!png_image_finish_read(&im, NULL, *pixels, 0, NULL)) {
    snprintf(err, cap, "%s: corrupt PNG image (%s)", path, im.message);
    png_image_free(&im);
    free(*pixels);
    *pixels = NULL;
    return 1;
  }
  *h = im.height;
  *w = im.width;
  *c = grey ? 1 : 4;
  png_image_free(&im);
  return 0;
}
#endif

#ifdef MPNAS_CLI_JPEG
/* libjpeg reports errors through error_exit, which must not return: it jumps back. */
typedef struct jpeg_failure {
  struct jpeg_error_mgr mgr;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  int truncated, corrupt;
  long stray; /* bytes of JWRN_EXTRANEOUS_DATA */
} jpeg_failure;

static void jpeg_fail(j_common_ptr cinfo) {
  jpeg_failure *f = (jpeg_failure *)cinfo->err;
  f->mgr.format_message(cinfo, f->message);
  longjmp(f->jump, 1);
}

/* Warnings: a file that ends early is corrupt (libjpeg would pad it with grey), and so
 * is one whose entropy-coded data libjpeg finds damaged (a bad Huffman code, a lost
 * restart marker, a segment cut short: it decodes grey or garbage rows and goes on).
 * Stray bytes between markers are counted and reported but accepted: cameras write
 * them, and every viewer shows such files. */
static void jpeg_warn(j_common_ptr cinfo, int level) {
  jpeg_failure *f = (jpeg_failure *)cinfo->err;
  if (level >= 0) return; /* trace messages */
  switch (f->mgr.msg_code) {
    case JWRN_JPEG_EOF: f->truncated = 1; break;
    case JWRN_HUFF_BAD_CODE:
    case JWRN_MUST_RESYNC:
    case JWRN_HIT_MARKER:
      if (!f->corrupt) f->mgr.format_message(cinfo, f->message);
      f->corrupt = 1;
      break;
    case JWRN_EXTRANEOUS_DATA: f->stray += f->mgr.msg_parm.i[0]; break;
    default: break;
  }
}

/* Grey stays one channel, everything else (YCbCr, RGB) becomes RGB; CMYK is refused. */
static int decode_jpeg(const char *path, uint8_t **pixels, int64_t *h, int64_t *w, int64_t *c,
                       char *err, size_t cap) {
  struct jpeg_decompress_struct cinfo;
  jpeg_failure fail;
  FILE *volatile file = fopen(path, "rb");
  uint8_t *volatile out = NULL;
  if (!file) {
    snprintf(err, cap, "%s: cannot open (%s)", path, strerror(errno));
    return 1;
  }
  cinfo.err = jpeg_std_error(&fail.mgr);
  fail.mgr.error_exit = jpeg_fail;
  fail.mgr.emit_message = jpeg_warn;
  fail.truncated = fail.corrupt = 0;
  fail.stray = 0;
  if (setjmp(fail.jump)) {
    snprintf(err, cap, "%s: not a readable JPEG image (%s)", path,
             fail.truncated ? "the file ends early" : fail.message);
    jpeg_destroy_decompress(&cinfo);
    fclose(file);
    free(out);
    return 1;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_stdio_src(&cinfo, file);
  jpeg_read_header(&cinfo, TRUE);
  if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
    snprintf(fail.message, sizeof fail.message, "CMYK images are not supported");
    longjmp(fail.jump, 1);
  }
  int grey = cinfo.jpeg_color_space == JCS_GRAYSCALE;
  cinfo.out_color_space = grey ? JCS_GRAYSCALE : JCS_RGB;
  if (too_large(cinfo.image_height, cinfo.image_width, path, err, cap)) {
    jpeg_destroy_decompress(&cinfo);
    fclose(file);
    return 1;
  }
  jpeg_start_decompress(&cinfo);
  size_t stride = (size_t)cinfo.output_width * (size_t)cinfo.output_components;
  out = malloc(stride * cinfo.output_height);
  if (!out) {
    snprintf(fail.message, sizeof fail.message, "out of memory");
    longjmp(fail.jump, 1);
  }
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = out + stride * cinfo.output_scanline;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  if (fail.truncated) longjmp(fail.jump, 1);
  jpeg_finish_decompress(&cinfo);
  if (fail.corrupt) longjmp(fail.jump, 1); /* fail.message: libjpeg's "Corrupt JPEG data: ..." */
  if (fail.stray > 0)
    fprintf(stderr, "mpnas: %s: %ld stray bytes between JPEG markers (used as decoded; a "
                    "damaged file can look like this)\n",
            path, fail.stray);
  *h = cinfo.output_height;
  *w = cinfo.output_width;
  *c = cinfo.output_components;
  *pixels = out;
  jpeg_destroy_decompress(&cinfo);
  fclose(file);
  return 0;
}
#endif

/* The format by the first bytes: "PNG", "JPEG", or another known one we do not read. */
static const char *sniff(const unsigned char *b, size_t n) {
  if (n >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) return "PNG";
  if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return "JPEG";
  if (n >= 6 && (memcmp(b, "GIF87a", 6) == 0 || memcmp(b, "GIF89a", 6) == 0)) return "GIF";
  if (n >= 2 && b[0] == 'B' && b[1] == 'M') return "BMP";
  if (n >= 12 && memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "WEBP", 4) == 0) return "WebP";
  if (n >= 4 && (memcmp(b, "II*\0", 4) == 0 || memcmp(b, "MM\0*", 4) == 0)) return "TIFF";
  return NULL;
}

int cli_image_decode(const char *path, uint8_t **pixels, int64_t *h, int64_t *w, int64_t *c,
                     char *err, size_t cap) {
  unsigned char head[16];
  *pixels = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, cap, "%s: cannot open (%s)", path, strerror(errno));
    return 1;
  }
  size_t n = fread(head, 1, sizeof head, f);
  int read_error = ferror(f) ? (errno != 0 ? errno : EIO) : 0; /* a directory: EISDIR */
  fclose(f);
  if (read_error != 0) {
    snprintf(err, cap, "%s: cannot read (%s)", path, strerror(read_error));
    return 1;
  }
  const char *format = sniff(head, n);
#ifdef MPNAS_CLI_PNG
  if (format && strcmp(format, "PNG") == 0) return decode_png(path, pixels, h, w, c, err, cap);
#endif
#ifdef MPNAS_CLI_JPEG
  if (format && strcmp(format, "JPEG") == 0) return decode_jpeg(path, pixels, h, w, c, err, cap);
#endif
  (void)h, (void)w, (void)c;
  if (!format)
    snprintf(err, cap, "%s: not an image this command reads (%s%s)", path,
             cli_image_formats()[0] ? "formats: " : "built without PNG and JPEG support",
             cli_image_formats());
  else if (strstr(cli_image_missing_formats(), format))
    snprintf(err, cap, "%s: a %s image, and this mpnas was built without %s support "
                       "(install %s and rebuild)",
             path, format, format, strcmp(format, "PNG") == 0 ? "libpng-dev" : "libjpeg-dev");
  else
    snprintf(err, cap, "%s: a %s image; this command reads %s (convert it)", path, format,
             cli_image_formats());
  return 1;
}
