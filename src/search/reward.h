/* reward.h - the search reward of one domain (docs/ALGORITHM.md section 3.4).
 *
 *   R = base(Q, C) - gamma * A
 *
 * base, by form (Q = validation top-1 in [0, 1], C = cost of the path, C0 = target cost,
 * in the same unit: MACs, parameters or seconds; the cost model lives elsewhere):
 *   NONE   R = Q                              (cost ignored)
 *   ABS    R = Q + beta * |C/C0 - 1|          TuNAS 'abs', beta < 0, default -0.1
 *   MNAS   R = Q * (C/C0)^beta                MnasNet, beta < 0, default -0.07
 * C0 sets the model size: ABS pulls every path towards C0 from both sides; MNAS
 * trades accuracy for cost smoothly. C0 > 0 is required by ABS and MNAS; MNAS also needs
 * C > 0 (C = 0 would give an infinite reward for beta < 0).
 *
 * Sharing term [ours, beyond the paper; docs/ALGORITHM.md section 4]: A = domain d's
 * SHARE of the joint model's parameters - each node (node = (layer, op)) of its path
 * costs its parameters divided by the number of domains whose path uses it (d, and the
 * others by their current argmax paths) - divided by the parameters of the reference
 * path's nodes (the caller divides). With every domain on its argmax path the shares
 * add up to the multi-path model's node parameters, the size the method is judged by:
 * a node one domain keeps to itself costs it all, a node six domains use costs each a
 * sixth, and a big shared node still costs more than a small one. gamma = 0 switches
 * the term off (the paper's plain reward). Earlier forms, replaced after measuring
 * (docs/RESULTS.md, "Levers"): the shared FRACTION of the path's own parameters paid a
 * domain for inflating shared nodes (+4..24% MACs); the parameters the path ADDS (its
 * nodes no other domain uses) left shared nodes free whatever their size, so the
 * domains met on wide late-layer nodes (about 0.5 M parameters on MDD-6 where the
 * share form gives about 0.33 M). Edge cases: zero ops have no parameters and cost
 * nothing; with one domain every node is its own, so A is the path's own parameters (a
 * parameter cost). */
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
#define MPNAS__REWARD_SHARING_GAMMA 0.5 /* the default strength (docs/RESULTS.md) */
/* The largest |R| mpnas__reward gives. Q is in [0, 1]: a reward this large only comes
 * from legal but extreme settings (a cost target 10^-300, beta -100 with MNAS), and the
 * controller's Adam works in float, where the square of a larger advantage overflows. */
#define MPNAS__REWARD_MAX 1e15

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

/* R = base(Q, C) - gamma * share into *out. MPNAS_E_INVALID_ARGUMENT for out == NULL,
 * non-finite Q / C / share, share < 0, C < 0, or C == 0 with MNAS; MPNAS_E_OUT_OF_RANGE
 * when R is not finite or |R| > MPNAS__REWARD_MAX (C / C0 ^ beta overflowing, ...);
 * otherwise config_check's status. *out is written only on success. */
mpnas_status mpnas__reward(const mpnas__reward_config *cfg, double quality, double cost,
                           double share, double *out);

/* Domain `domain`'s share (of n_domains) of the joint model's parameters with `path`:
 * the sum over its nodes of node_params / (1 + the number of other domains whose argmax
 * path uses the node), into *out. node_params: flat [sum n_ops] parameter count of node
 * (l, j) at offset(l) + j, where offset(l) = n_ops[0] + ... + n_ops[l-1] (0 for zero
 * ops). argmax_paths: [n_domains * n_layers], row e = domain e's current argmax path;
 * row `domain` is ignored. MPNAS_E_INVALID_ARGUMENT on NULL pointers, n_layers < 1,
 * n_ops[l] < 1, domain outside [0, n_domains), an op index outside its layer, or a
 * negative / non-finite parameter count. */
mpnas_status mpnas__reward_param_share(int32_t n_layers, const int32_t *n_ops,
                                       const double *node_params, int32_t n_domains,
                                       const int32_t *argmax_paths, int32_t domain,
                                       const int32_t *path, double *out);

#endif
