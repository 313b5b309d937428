/* model_run.h - a trained model run over a host's batch of images: evaluation and
 * prediction, in chunks, float or int8 (model_run.c). The api layer checks the
 * arguments and owns the predictor's workspace and packed weights. */
#ifndef MPNAS_MODEL_RUN_H
#define MPNAS_MODEL_RUN_H

#include "model/model.h"
#include "model/model_quant.h"

/* Top-1 accuracy and mean cross-entropy of `count` labelled images of domain d (checked:
 * valid domain, images and labels; the model ready). An int8-only model runs its int8
 * form. */
mpnas_status mpnas__model_evaluate(const mpnas_model *m, int32_t d, int32_t dtype,
                                   const void *images, const int32_t *labels, int64_t count,
                                   double *top1, double *loss);
/* count x classes logits (or probabilities) of domain d's images into out, through ws
 * with the weights packed by the caller: qpk for the int8 form, else packed (float).
 * Merges ws's pieces at the end so later calls reuse one block. */
mpnas_status mpnas__model_predict(const mpnas_model *m, mpnas__arena *ws,
                                  const mpnas__model_packed *packed,
                                  const mpnas__quant_packed *qpk, int32_t d, int32_t dtype,
                                  const void *images, int64_t count, int probabilities,
                                  float *out);

#endif
