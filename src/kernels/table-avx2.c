/* table-avx2.c - the kernel tables of MPNAS_ISA_AVX2 (x86-64; chosen at run time,
 * dispatch.c): "avx2" when the CPU has AVX2 and FMA, "avx2+vnni" when it also has
 * AVX-VNNI; "avx512" (AVX2 int8 kernels) when it also has AVX-512 F/VL/BW/DQ and the OS
 * saves the zmm state, and "avx512+vnni" when it has that and AVX512_VNNI. The avx512
 * tables have AVX-512 versions of every float kernel: the GEMM (gemm/gemm-avx512.c),
 * the depthwise (dwconv/dwconv-avx512.c: dwconv-x86.h at 16 lanes) and the BN /
 * activation kernels (misc/misc-avx512.c: misc-x86.h at 16 lanes), each bit-identical
 * to its AVX2 twin. int8: "avx2+vnni" has those of
 * src/kernels/q8/q8-vnni-avx2.c (AVX-VNNI, ymm), "avx512+vnni" those of
 * q8-vnni-avx512.c (AVX512-VNNI: zmm GEMM, EVEX ymm depthwise; it does not need
 * AVX-VNNI). The VNNI GEMMs pack their weights differently from the AVX2 one, and the
 * avx512 tables' float GEMM packs in 32-wide panels, so a model packed with one table
 * must not be run with another (the model keys its packing on the table pointer:
 * model.c, model_quant.c). Every table computes the same int8 outputs (kernels.h). */
#include "kernels/misc/misc.h"
#include "kernels/simd-avx2.h"
#include "kernels/simd-avx512.h"
#include "kernels/q8/q8-simd.h"
#include "kernels/ref/ref.h"
#include "mpnas.h"

/* Pointwise GEMM: the avx512 tables' packs 32-wide panels (see above). Both weight
 * gradients, GEMM and depthwise, sum in blocks a caller may split at (kernels.h). */
#define AVX2_GEMM_KERNELS \
    .weight_grad_in_blocks = 1, \
    .gemm_packed_floats = mpnas__f32_gemm_packed_floats__avx2, \
    .gemm_pack = mpnas__f32_gemm_pack__avx2, \
    .gemm = mpnas__f32_gemm__avx2, \
    .gemm_bwd_weight = mpnas__f32_gemm_bwd_weight__avx2,
#define AVX512_GEMM_KERNELS \
    .weight_grad_in_blocks = 1, \
    .gemm_packed_floats = mpnas__f32_gemm_packed_floats__avx512, \
    .gemm_pack = mpnas__f32_gemm_pack__avx512, \
    .gemm = mpnas__f32_gemm__avx512, \
    .gemm_bwd_weight = mpnas__f32_gemm_bwd_weight__avx512,
/* Depthwise: the avx512 tables' (dwconv/dwconv-avx512.c) give the avx2 ones' results
 * bit for bit (dwconv-x86.h). */
#define AVX2_DW_KERNELS \
    .dw_fwd = mpnas__f32_dwconv_fwd__avx2, \
    .dw_bwd_input = mpnas__f32_dwconv_bwd_input__avx2, \
    .dw_bwd_weight = mpnas__f32_dwconv_bwd_weight__avx2,
#define AVX512_DW_KERNELS \
    .dw_fwd = mpnas__f32_dwconv_fwd__avx512, \
    .dw_bwd_input = mpnas__f32_dwconv_bwd_input__avx512, \
    .dw_bwd_weight = mpnas__f32_dwconv_bwd_weight__avx512,
/* Batch norm and activations: misc/misc-x86.h at 8 and at 16 lanes (bit-identical). */
#define AVX2_MISC_KERNELS \
    .bn_stats = mpnas__f32_bn_stats__avx2, \
    .bn_apply = mpnas__f32_bn_apply__avx2, \
    .bn_bwd_reduce = mpnas__f32_bn_bwd_reduce__avx2, \
    .bn_bwd_reduce_act = mpnas__f32_bn_bwd_reduce_act__avx2, \
    .bn_bwd_dx = mpnas__f32_bn_bwd_dx__avx2, \
    .act_fwd = mpnas__f32_act_fwd__avx2, \
    .act_bwd = mpnas__f32_act_bwd__avx2,
#define AVX512_MISC_KERNELS \
    .bn_stats = mpnas__f32_bn_stats__avx512, \
    .bn_apply = mpnas__f32_bn_apply__avx512, \
    .bn_bwd_reduce = mpnas__f32_bn_bwd_reduce__avx512, \
    .bn_bwd_reduce_act = mpnas__f32_bn_bwd_reduce_act__avx512, \
    .bn_bwd_dx = mpnas__f32_bn_bwd_dx__avx512, \
    .act_fwd = mpnas__f32_act_fwd__avx512, \
    .act_bwd = mpnas__f32_act_bwd__avx512,

const mpnas__kernels mpnas__kernels_avx2 = {
    .name = "avx2",
    .isa = MPNAS_ISA_AVX2,
    AVX2_DW_KERNELS
    AVX2_MISC_KERNELS
    AVX2_GEMM_KERNELS
    /* int8: src/kernels/q8/q8-avx2.c */
    .q8_gemm_packed_bytes = mpnas__q8_gemm_packed_bytes__avx2,
    .q8_gemm_pack = mpnas__q8_gemm_pack__avx2,
    .q8_gemm = mpnas__q8_gemm__avx2,
    .q8_dw_fwd = mpnas__q8_dwconv_fwd__avx2,
};

const mpnas__kernels mpnas__kernels_avx2_vnni = {
    .name = "avx2+vnni",
    .isa = MPNAS_ISA_AVX2,
    AVX2_DW_KERNELS
    AVX2_MISC_KERNELS
    AVX2_GEMM_KERNELS
    /* int8: src/kernels/q8/q8-vnni-avx2.c */
    .q8_gemm_packed_bytes = mpnas__q8_gemm_packed_bytes__avx2_vnni,
    .q8_gemm_pack = mpnas__q8_gemm_pack__avx2_vnni,
    .q8_gemm = mpnas__q8_gemm__avx2_vnni,
    .q8_dw_fwd = mpnas__q8_dwconv_fwd__avx2_vnni,
};

const mpnas__kernels mpnas__kernels_avx512 = {
    .name = "avx512",
    .isa = MPNAS_ISA_AVX2,
    AVX512_DW_KERNELS
    AVX512_MISC_KERNELS
    AVX512_GEMM_KERNELS
    .q8_gemm_packed_bytes = mpnas__q8_gemm_packed_bytes__avx2,
    .q8_gemm_pack = mpnas__q8_gemm_pack__avx2,
    .q8_gemm = mpnas__q8_gemm__avx2,
    .q8_dw_fwd = mpnas__q8_dwconv_fwd__avx2,
};

const mpnas__kernels mpnas__kernels_avx512_vnni = {
    .name = "avx512+vnni",
    .isa = MPNAS_ISA_AVX2,
    AVX512_DW_KERNELS
    AVX512_MISC_KERNELS
    AVX512_GEMM_KERNELS
    /* int8: src/kernels/q8/q8-vnni-avx512.c (AVX512-VNNI) */
    .q8_gemm_packed_bytes = mpnas__q8_gemm_packed_bytes__avx512_vnni,
    .q8_gemm_pack = mpnas__q8_gemm_pack__avx512_vnni,
    .q8_gemm = mpnas__q8_gemm__avx512_vnni,
    .q8_dw_fwd = mpnas__q8_dwconv_fwd__avx512_vnni,
};
