/* test_export.c - the ONNX export's API (mpnas_model_export_onnx, _buffer): statuses and
 * messages on bad input, the size query, file == buffer, the atomic write, the wire
 * structure of the result; and the protobuf writer underneath (common/protobuf.h) on
 * byte-exact encodings. Whether ONNX tools accept the files and compute the predictor's
 * logits is tests/test_onnx.sh's part. */
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "../examples/synthetic.h"
#include "common/protobuf.h"
#include "mpnas.h"

#define OKC(call) CHECK_EQ_INT((call), MPNAS_OK)

static char tmpdir[64];

/* ---- The protobuf writer ------------------------------------------------------------- */

static void expect_bytes(const unsigned char *got, size_t n, const unsigned char *want, size_t m) {
  CHECK_EQ_INT(n, m);
  CHECK(n == m && memcmp(got, want, n) == 0);
}

static void test_protobuf_encodings(void) {
  mpnas_context *ctx = NULL;
  OKC(mpnas_context_create(&ctx));
  mpnas__proto pb;
  mpnas__proto_init(&pb, ctx);
  mpnas__proto_int(&pb, 1, 300);   /* 08 ac 02 */
  mpnas__proto_int(&pb, 2, -1);    /* 10 ff*9 01 */
  mpnas__proto_float(&pb, 3, 1.0f); /* 1d 00 00 80 3f */
  mpnas__proto_string(&pb, 4, "ab"); /* 22 02 61 62 */
  mpnas__proto_begin(&pb, 5);      /* 2a c7 01: 199 bytes, a length of two bytes */
  unsigned char body[196];
  memset(body, 7, sizeof body);
  mpnas__proto_bytes(&pb, 1, body, 196); /* 0a c4 01 + 196 bytes */
  mpnas__proto_end(&pb);
  mpnas__proto_int(&pb, 6, 0);     /* 30 00 */
  unsigned char *data = NULL;
  size_t len = 0;
  OKC(mpnas__proto_finish(&pb, &data, &len));
  unsigned char want[512];
  size_t n = 0;
  const unsigned char head[] = {0x08, 0xac, 0x02, 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                0xff, 0xff, 0x01, 0x1d, 0x00, 0x00, 0x80, 0x3f, 0x22, 0x02, 'a',
                                'b', 0x2a, 0xc7, 0x01, 0x0a, 0xc4, 0x01};
  memcpy(want, head, sizeof head);
  n = sizeof head;
  memset(want + n, 7, 196);
  n += 196;
  want[n++] = 0x30;
  want[n++] = 0x00;
  expect_bytes(data, len, want, n);
  mpnas__free(ctx, data);

  /* Unbalanced messages are refused, and nothing is handed over. */
  mpnas__proto_init(&pb, ctx);
  mpnas__proto_begin(&pb, 1);
  CHECK_EQ_INT(mpnas__proto_finish(&pb, &data, &len), MPNAS_E_INTERNAL);
  CHECK(data == NULL && len == 0);
  mpnas__proto_init(&pb, ctx);
  mpnas__proto_end(&pb);
  CHECK_EQ_INT(mpnas__proto_finish(&pb, &data, &len), MPNAS_E_INTERNAL);
  CHECK(data == NULL);
  /* 2 GiB or more is refused before anything is read or allocated. */
  float one = 1.0f;
  mpnas__proto_init(&pb, ctx);
  mpnas__proto_floats_le(&pb, 1, &one, (size_t)1 << 30);
  CHECK_EQ_INT(mpnas__proto_finish(&pb, &data, &len), MPNAS_E_UNSUPPORTED);
  CHECK(strstr(mpnas_context_last_error(ctx), "2 GiB") != NULL);
  mpnas__proto_init(&pb, ctx);
  mpnas__proto_int(&pb, 1, 5);
  mpnas__proto_bytes(&pb, 2, &one, (size_t)INT32_MAX);
  CHECK_EQ_INT(mpnas__proto_finish(&pb, &data, &len), MPNAS_E_UNSUPPORTED);
  CHECK(data == NULL);
  mpnas_context_free(ctx);
}

/* ---- A protobuf reader for the checks below ------------------------------------------- */

typedef struct field {
  uint32_t number, wire;
  uint64_t value;            /* varint */
  const unsigned char *data; /* length-delimited */
  size_t len;
} field;

static int get_varint(const unsigned char *p, size_t n, size_t *at, uint64_t *v) {
  *v = 0;
  for (int shift = 0; shift < 64 && *at < n; shift += 7) {
    unsigned char b = p[(*at)++];
    *v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return 1;
  }
  return 0;
}

/* The next field of p[0, n) at *at; 0 at the end, -1 if malformed. */
static int next_field(const unsigned char *p, size_t n, size_t *at, field *f) {
  if (*at == n) return 0;
  uint64_t key;
  if (!get_varint(p, n, at, &key)) return -1;
  f->number = (uint32_t)(key >> 3);
  f->wire = (uint32_t)(key & 7);
  if (f->wire == 0) return get_varint(p, n, at, &f->value) ? 1 : -1;
  if (f->wire == 5) {
    if (n - *at < 4) return -1;
    *at += 4;
    return 1;
  }
  if (f->wire != 2 || !get_varint(p, n, at, &f->value) || f->value > n - *at) return -1;
  f->data = p + *at;
  f->len = (size_t)f->value;
  *at += f->len;
  return 1;
}

/* ---- The export --------------------------------------------------------------------- */

static mpnas_model *small_model(mpnas_context *ctx, int train) {
  mpnas_space *sp = NULL;
  OKC(mpnas_space_create(ctx, MPNAS_PRESET_EMPTY, &sp));
  OKC(mpnas_space_set_int(sp, MPNAS_SPACE_STEM_CHANNELS, 8));
  OKC(mpnas_space_set_int(sp, MPNAS_SPACE_HEAD_CHANNELS, 16));
  OKC(mpnas_space_set_int(sp, MPNAS_SPACE_SE_MODE, MPNAS_SE_ALWAYS));
  OKC(mpnas_space_add_stage(sp, 8, 2, 2, MPNAS_ACT_HSWISH, 1));
  mpnas_model *m = NULL;
  OKC(mpnas_model_create(ctx, sp, &m));
  mpnas_space_free(sp);
  static uint8_t x[32 * SYN_PIXELS];
  int32_t y[32];
  for (int d = 0; d < 2; d++) {
    const int32_t path[2] = {0, d}; /* domain 0 skips layer 1 (op 0: zero) */
    OKC(mpnas_model_add_domain(m, SYN_NAMES[d], SYN_CLASSES[d], path, 2, NULL));
    for (int i = 0; i < 32; i++) y[i] = syn_image(d, (uint64_t)i, 1, x + (size_t)i * SYN_PIXELS);
    OKC(mpnas_model_set_data(m, d, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, x, y, 32));
  }
  OKC(mpnas_model_set_int(m, MPNAS_TRAIN_STEPS, 3));
  OKC(mpnas_model_set_int(m, MPNAS_TRAIN_BATCH, 8));
  if (train) OKC(mpnas_model_train(m, 0, NULL, NULL, 0));
  return m;
}

static unsigned char *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)n + 1);
  *len = fread(b, 1, (size_t)n, f);
  fclose(f);
  return b;
}

static void test_export_file_and_buffer(void) {
  mpnas_context *ctx = NULL;
  OKC(mpnas_context_create(&ctx));
  mpnas_model *m = small_model(ctx, 1);
  for (int32_t d = 0; d < 2; d++) {
    size_t size = 0, size2 = 0, flen = 0;
    OKC(mpnas_model_export_onnx_buffer(m, d, NULL, 0, &size));
    CHECK(size > 1000);
    unsigned char *buf = malloc(size);
    OKC(mpnas_model_export_onnx_buffer(m, d, buf, size, &size2));
    CHECK_EQ_INT(size2, size);
    char path[128];
    snprintf(path, sizeof path, "%s/d%d.onnx", tmpdir, (int)d);
    OKC(mpnas_model_export_onnx(m, d, path));
    unsigned char *file = read_all(path, &flen);
    CHECK(file != NULL && flen == size && memcmp(file, buf, size) == 0);

    /* ModelProto: ir_version 7, opset 13, a graph whose input is "input", with nodes and
     * initializers, every nested message well formed down to the nodes. */
    size_t at = 0, gat = 0;
    field f, g;
    int64_t ir = -1, opset = -1, nodes = 0, inits = 0, r;
    int graph_input = 0;
    while ((r = next_field(buf, size, &at, &f)) == 1) {
      if (f.number == 1 && f.wire == 0) ir = (int64_t)f.value;
      if (f.number == 8 && f.wire == 2) {
        size_t oat = 0;
        field o;
        while (next_field(f.data, f.len, &oat, &o) == 1)
          if (o.number == 2) opset = (int64_t)o.value;
      }
      if (f.number != 7 || f.wire != 2) continue;
      gat = 0;
      while ((r = next_field(f.data, f.len, &gat, &g)) == 1) {
        size_t nat = 0;
        field inner;
        int ok = 1, rr;
        if (g.wire == 2 && g.number != 2) {
          while ((rr = next_field(g.data, g.len, &nat, &inner)) == 1) {
          }
          ok = rr == 0;
        }
        CHECK(ok);
        nodes += g.number == 1;
        inits += g.number == 5;
        if (g.number == 11) {
          nat = 0;
          CHECK(next_field(g.data, g.len, &nat, &inner) == 1);
          graph_input = inner.number == 1 && inner.len == 5 && memcmp(inner.data, "input", 5) == 0;
        }
      }
      CHECK_EQ_INT(r, 0);
    }
    CHECK_EQ_INT(r, 0);
    CHECK_EQ_INT(ir, 7);
    CHECK_EQ_INT(opset, 13);
    CHECK(graph_input);
    CHECK(nodes > 10 && inits > 10);
    free(file);
    free(buf);
  }
  /* Deterministic: the same model exports the same bytes; a loaded copy too. */
  size_t a = 0, b = 0, msize = 0;
  OKC(mpnas_model_save_buffer(m, NULL, 0, &msize));
  unsigned char *mbytes = malloc(msize);
  OKC(mpnas_model_save_buffer(m, mbytes, msize, &msize));
  mpnas_model *copy = NULL;
  OKC(mpnas_model_load_buffer(ctx, mbytes, msize, &copy));
  OKC(mpnas_model_export_onnx_buffer(m, 1, NULL, 0, &a));
  OKC(mpnas_model_export_onnx_buffer(copy, 1, NULL, 0, &b));
  unsigned char *ba = malloc(a), *bb = malloc(b);
  OKC(mpnas_model_export_onnx_buffer(m, 1, ba, a, &a));
  OKC(mpnas_model_export_onnx_buffer(copy, 1, bb, b, &b));
  CHECK(a == b && memcmp(ba, bb, a) == 0);
  free(ba);
  free(bb);
  free(mbytes);
  mpnas_model_free(copy);
  mpnas_model_free(m);
  mpnas_context_free(ctx);
}

/* A failing call: its status, and a message on the context. */
#define CHECK_FAILS(call, status)                                        \
  do {                                                                   \
    mpnas_context_clear_error(ctx);                                      \
    CHECK_EQ_INT((call), (status));                                      \
    CHECK(mpnas_context_last_error(ctx)[0] != 0);                        \
  } while (0)

static void test_export_errors(void) {
  mpnas_context *ctx = NULL;
  OKC(mpnas_context_create(&ctx));
  size_t size = 0;
  CHECK_EQ_INT(mpnas_model_export_onnx(NULL, 0, "x.onnx"), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas_model_export_onnx_buffer(NULL, 0, NULL, 0, &size), MPNAS_E_INVALID_ARGUMENT);
  mpnas_model *fresh = small_model(ctx, 0);
  char path[128];
  snprintf(path, sizeof path, "%s/untrained.onnx", tmpdir);
  CHECK_FAILS(mpnas_model_export_onnx(fresh, 0, path), MPNAS_E_STATE);
  CHECK(access(path, F_OK) != 0);
  mpnas_model_free(fresh);

  mpnas_model *m = small_model(ctx, 1);
  CHECK_FAILS(mpnas_model_export_onnx(m, 0, NULL), MPNAS_E_INVALID_ARGUMENT);
  CHECK_FAILS(mpnas_model_export_onnx(m, 2, path), MPNAS_E_OUT_OF_RANGE);
  CHECK_FAILS(mpnas_model_export_onnx(m, -1, path), MPNAS_E_OUT_OF_RANGE);
  CHECK_FAILS(mpnas_model_export_onnx_buffer(m, 0, NULL, 0, NULL), MPNAS_E_INVALID_ARGUMENT);
  OKC(mpnas_model_export_onnx_buffer(m, 0, NULL, 0, &size));
  unsigned char small[16];
  size_t got = 0;
  CHECK_FAILS(mpnas_model_export_onnx_buffer(m, 0, small, sizeof small, &got), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(got, size); /* the size needed, as mpnas_model_save_buffer */
  CHECK(strstr(mpnas_context_last_error(ctx), "bytes") != NULL);

  /* An unwritable path: MPNAS_E_IO, and an existing file stays as it was. */
  snprintf(path, sizeof path, "%s/no/such/dir/x.onnx", tmpdir);
  CHECK_FAILS(mpnas_model_export_onnx(m, 0, path), MPNAS_E_IO);
  snprintf(path, sizeof path, "%s/keep.onnx", tmpdir);
  FILE *f = fopen(path, "w");
  fputs("old", f);
  fclose(f);
  char dir[128];
  snprintf(dir, sizeof dir, "%s", tmpdir);
  chmod(dir, 0500); /* no new files in it (root ignores this: then the write succeeds) */
  mpnas_status st = mpnas_model_export_onnx(m, 0, path);
  chmod(dir, 0700);
  size_t len = 0;
  unsigned char *back = read_all(path, &len);
  if (st != MPNAS_OK) CHECK(back != NULL && len == 3 && memcmp(back, "old", 3) == 0);
  else CHECK_EQ_INT(len, size);
  free(back);
  mpnas_model_free(m);
  mpnas_context_free(ctx);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/mpnas-export-XXXXXX");
  if (mkdtemp(tmpdir) == NULL) {
    printf("cannot create a temporary directory\n");
    return 1;
  }
  RUN(test_protobuf_encodings);
  RUN(test_export_file_and_buffer);
  RUN(test_export_errors);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  if (system(cmd) != 0) printf("could not remove %s\n", tmpdir);
  return check_finish();
}
