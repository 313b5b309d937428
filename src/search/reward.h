/* reward.h - the search reward of one domain (ALGORITHM.md section 3.4).
 *
 *   R = base(Q, C) + gamma * S
 *
 * base, by form (Q = validation top-1 in [0, 1], C = cost of the path, C0 = target cost,
 * in the same unit: MACs, parameters or seconds; the cost model lives elsewhere):
 *   NONE   R = Q                              (cost ignored)
 *   ABS    R = Q + beta * |C/C0 - 1|          TuNAS 'abs', beta < 0, default -0.1
 *   MNAS   R = Q * (C/C0)^beta                MnasNet, beta < 0, default -0.07
 * C0 sets the model size: ABS pulls every path towards cost C0 from both sides; MNAS
 * trades accuracy for cost smoothly. C0 > 0 is required by ABS and MNAS; MNAS also needs
 * C > 0 (C = 0 would give an infinite reward for beta < 0).
 *
 * Sharing term [ours, beyond the paper]: S = 1 - P_added(a_d) / P(a_d), where P(a_d) is
 * the parameter count of domain d's path nodes (node = (layer, op)) and P_added those of
 * its nodes that NO other domain's current argmax path uses. S = 1 for a fully shared
 * path, 0 for a fully exclusive one, in between by parameter weight. gamma > 0 rewards
 * sharing (a domain is charged for the parameters it adds to the joint model); gamma = 0
 * (the default) switches it off, giving the paper's plain reward; gamma < 0 would
 * reward exclusivity and is allowed but pointless. Edge cases:
 *  - P(a_d) = 0 (every layer of the path is a zero/parameter-free op): the path adds
 *    nothing, so S = 1 (nothing to charge; the cost term still sees a tiny C);
 *  - one domain only (no other paths): every node is exclusive, S = 0 (or 1 if P = 0);
 *  - two domains choosing the same zero op share nothing of weight: zero ops have 0
 *    parameters and count in neither P nor P_added.
 * The magnitude: Q is in [0, 1], so gamma ~ 0.05..0.1 competes with the ABS cost term
 * (beta = -0.1); no value has been measured yet. */
#ifndef MPNAS_SEARCH_REWARD_H
#define MPNAS_SEARCH_REWARD_H

#include <stdint.h>

#include "mpnas.h"

enum {
  MPNAS__REWARD_NONE = 0,
  MPNAS__REWARD_ABS = 1,
  MPNAS__REWARD_MNAS = 2
};

#define MPNAS__REWARD_ABS_BETA -0.1
#define MPNAS__REWARD_MNAS_BETA -0.07
#define MPNAS__REWARD_SHARING_GAMMA 0.0

typedef struct mpnas__reward_config {
  int32_t form;         /* MPNAS__REWARD_* */
  double beta;          /* cost exponent / slope of the form */
  double target_cost;   /* C0 > 0 (ABS, MNAS) */
  double sharing_gamma; /* gamma of the sharing term, 0 = off */
} mpnas__reward_config;

/* ABS, beta -0.1, gamma 0, target_cost 0: the caller must set C0 (e.g. the cost of a
 * mid-sized path) or pick NONE. */
void mpnas__reward_config_default(mpnas__reward_config *cfg);
/* MPNAS_OK, MPNAS_E_UNKNOWN_PARAMETER (form) or MPNAS_E_OUT_OF_RANGE (non-finite beta
 * or gamma, C0 <= 0 or non-finite for ABS / MNAS). */
mpnas_status mpnas__reward_config_check(const mpnas__reward_config *cfg);

/* R = base(Q, C) + gamma * shared_fraction into *out. MPNAS_E_INVALID_ARGUMENT for
 * out == NULL, non-finite Q / C / S, C < 0, or C == 0 with MNAS; otherwise
 * config_check's status. *out is written only on success. */
mpnas_status mpnas__reward(const mpnas__reward_config *cfg, double quality, double cost,
                           double shared_fraction, double *out);

/* S = 1 - P_added(path) / P(path) for domain `domain` of n_domains (see above).
 * node_params: flat [sum n_ops] parameter count of node (l, j) at offset(l) + j, where
 * offset(l) = n_ops[0] + ... + n_ops[l-1] (0 for zero ops). argmax_paths: [n_domains *
 * n_layers], row e = domain e's current argmax path; row `domain` is ignored. `path` is
 * domain d's sampled path. MPNAS_E_INVALID_ARGUMENT on NULL pointers, n_layers < 1,
 * n_ops[l] < 1, domain outside [0, n_domains), an op index outside its layer, or a
 * negative / non-finite parameter count. */
mpnas_status mpnas__reward_shared_fraction(int32_t n_layers, const int32_t *n_ops,
                                           const double *node_params, int32_t n_domains,
                                           const int32_t *argmax_paths, int32_t domain,
                                           const int32_t *path, double *out);

#endif
