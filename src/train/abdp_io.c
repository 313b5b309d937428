/* abdp_io.c - ABDP's state in a file (abdp.h): the one encoding the search checkpoint
 * (checkpoint.c) and the model's checkpoint (model_checkpoint.c) share; its settings are written from
 * their table (abdp_param.c, mpnas__settings_put). */
#include "train/abdp.h"

#include "common/common.h"

mpnas_status mpnas__abdp_state_write(mpnas__writer *w, const mpnas__abdp *a) {
  size_t n = mpnas__abdp_state_size(a);
  double *state = mpnas__malloc(w->ctx, sizeof(double) * n);
  if (state == NULL) return mpnas__fail(w->ctx, MPNAS_E_NO_MEMORY, "saving the ABDP state");
  mpnas__abdp_export(a, state, n);
  mpnas__writer_put_u32(w, (uint32_t)n);
  for (size_t i = 0; i < n; i++) mpnas__writer_put_f64(w, state[i]);
  mpnas__free(w->ctx, state);
  return MPNAS_OK;
}

mpnas_status mpnas__abdp_state_read(mpnas__reader *r, mpnas_context *ctx, int32_t D,
                                    double **state, size_t *n) {
  *state = NULL;
  *n = 0;
  /* A state holds 3 + 5 D values (abdp.h); the bound leaves room for a later layout. */
  uint32_t count = mpnas__reader_get_count(r, (uint32_t)(16 + 16 * (size_t)D), sizeof(double));
  mpnas_status st = mpnas__reader_status(r);
  if (st != MPNAS_OK) return st;
  double *v = mpnas__malloc(ctx, sizeof(double) * ((size_t)count + 1));
  if (v == NULL) return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "allocating the ABDP state");
  for (uint32_t i = 0; i < count; i++) v[i] = mpnas__reader_get_f64(r);
  if ((st = mpnas__reader_status(r)) != MPNAS_OK) {
    mpnas__free(ctx, v);
    return st;
  }
  *state = v;
  *n = count;
  return MPNAS_OK;
}
