/* embedded_model.c - a program that carries its model inside it: no model file to ship
 * or find at run time.
 *
 *   mpnas export model.mpnas --c-array model_data.h     (defines model_data[], model_data_size)
 *   cc -Iinclude -I. examples/embedded_model.c -o embedded -Llib -lmpnas -lm
 *   ./embedded DOMAIN
 *
 * Loads the model from the array (mpnas_model_load_buffer) and classifies four images
 * of the embedded synthetic set (examples/synthetic.h; the generator domain of the same
 * name, seed 7, indices from 1000000 as examples/infer draws them), printing
 * "image I: top1 C label L logits: v v ..." as `infer MODEL DOMAIN --logits --count 4`
 * does, so the two can be compared (tests/test_onnx.sh does).
 * Not part of `make examples`: it needs a model_data.h, which only a trained model gives
 * (-DMODEL_HEADER='"other.h"' -DMODEL_DATA=other picks another header and array). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpnas.h"
#include "synthetic.h"

#ifndef MODEL_HEADER
#define MODEL_HEADER "model_data.h"
#endif
#include MODEL_HEADER
#ifndef MODEL_DATA
#define MODEL_DATA model_data
#endif
#define CAT(a, b) a##b
#define SIZE_OF(name) CAT(name, _size)

#define COUNT 4

static int fail(mpnas_context *ctx, const char *what) {
  fprintf(stderr, "embedded_model: %s: %s\n", what, mpnas_context_last_error(ctx));
  return 1;
}

int main(int argc, char **argv) {
  const char *name = argc > 1 ? argv[1] : SYN_NAMES[0];
  int syn = -1;
  for (int i = 0; i < SYN_DOMAINS; i++)
    if (strcmp(name, SYN_NAMES[i]) == 0) syn = i;
  if (syn < 0) {
    fprintf(stderr, "embedded_model: %s is not a domain of examples/synthetic.h\n", name);
    return 1;
  }
  mpnas_context *ctx = NULL;
  mpnas_model *model = NULL;
  mpnas_predictor *pred = NULL;
  if (mpnas_context_create(&ctx) != MPNAS_OK) return 1;
  int rc = 1;
  int32_t ndomains = 0, domain = -1, classes = 0;
  if (mpnas_model_load_buffer(ctx, MODEL_DATA, SIZE_OF(MODEL_DATA), &model) != MPNAS_OK) {
    rc = fail(ctx, "mpnas_model_load_buffer");
    goto done;
  }
  mpnas_model_num_domains(model, &ndomains);
  for (int32_t d = 0; d < ndomains; d++) {
    char dn[64];
    if (mpnas_model_domain_name(model, d, dn, sizeof dn, NULL) == MPNAS_OK && strcmp(dn, name) == 0)
      domain = d;
  }
  if (domain < 0) {
    fprintf(stderr, "embedded_model: the model has no domain %s\n", name);
    goto done;
  }
  mpnas_model_domain_classes(model, domain, &classes);
  static uint8_t images[COUNT * SYN_PIXELS];
  int32_t labels[COUNT];
  for (int i = 0; i < COUNT; i++) labels[i] = syn_image(syn, 1000000u + (uint64_t)i, 7, images + i * SYN_PIXELS);
  float *logits = malloc(sizeof(float) * COUNT * (size_t)classes);
  if (logits == NULL) goto done;
  if (mpnas_predictor_create(model, &pred) != MPNAS_OK ||
      mpnas_predictor_run(pred, domain, MPNAS_DTYPE_U8, images, COUNT, MPNAS_OUTPUT_LOGITS, logits,
                          COUNT * (size_t)classes) != MPNAS_OK) {
    rc = fail(ctx, "predict");
    free(logits);
    goto done;
  }
  for (int i = 0; i < COUNT; i++) {
    const float *row = logits + (size_t)i * (size_t)classes;
    int top = 0;
    for (int k = 1; k < classes; k++)
      if (row[k] > row[top]) top = k;
    printf("image %d: top1 %d label %d logits:", i, top, (int)labels[i]);
    for (int k = 0; k < classes; k++) printf(" %.9g", (double)row[k]);
    printf("\n");
  }
  free(logits);
  rc = 0;
done:
  mpnas_predictor_free(pred);
  mpnas_model_free(model);
  mpnas_context_free(ctx);
  return rc;
}
