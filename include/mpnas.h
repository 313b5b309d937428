/*
 * mpnas.h - the one public header of libmpnas.
 *
 * libmpnas builds one small image classifier that serves several visual domains at
 * once, by multi-path neural architecture search (MPNAS): a shared MobileNet-style
 * super-network, one REINFORCE controller per domain choosing that domain's path, the
 * chosen paths merged into one multi-path model trained with ABDP, and fast per-domain
 * inference on AVX2 and NEON kernels.
 *
 * Conventions (see docs/API-STABILITY.md):
 *  - Every function that can fail returns an mpnas_status: MPNAS_OK (0) or a negative
 *    code below. Codes are never renumbered. A failing call on a handle also stores a
 *    message with detail, read with mpnas_context_last_error().
 *  - Create functions take an out-parameter; *_free(NULL) is a no-op.
 *  - Only opaque handles, fixed-width scalars and pointers with explicit lengths cross
 *    the ABI. Parameters are set through typed setters keyed by an enum value.
 *  - The library never prints, never exits or aborts, and has no global mutable state.
 *    Logging goes through a callback the host installs.
 *  - Threading: one handle is used by one thread at a time; separate contexts are
 *    independent (docs/THREADING.md).
 */
#ifndef MPNAS_H
#define MPNAS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Export macro --------------------------------------------------------------- */
#if defined(_WIN32)
#  if defined(MPNAS_BUILDING_LIBRARY)
#    define MPNAS_API __declspec(dllexport)
#  else
#    define MPNAS_API
#  endif
#elif defined(__GNUC__) && __GNUC__ >= 4
#  define MPNAS_API __attribute__((visibility("default")))
#else
#  define MPNAS_API
#endif

/* ---- Version ----------------------------------------------------------------------
 * The shared library's soname follows the major version (libmpnas.so.MAJOR). */
#define MPNAS_VERSION_MAJOR 0
#define MPNAS_VERSION_MINOR 1
#define MPNAS_VERSION_PATCH 0
#define MPNAS_VERSION_NUMBER \
  (MPNAS_VERSION_MAJOR * 10000 + MPNAS_VERSION_MINOR * 100 + MPNAS_VERSION_PATCH)
#define MPNAS_VERSION_STRING "0.1.0"

/* The run-time library's version as MAJOR*10000 + MINOR*100 + PATCH; compare with
 * MPNAS_VERSION_NUMBER to detect a header/library mismatch. */
MPNAS_API uint32_t mpnas_version_number(void);
/* The run-time library's version as "MAJOR.MINOR.PATCH" (static storage). */
MPNAS_API const char *mpnas_version_string(void);

/* ---- Status codes ------------------------------------------------------------------ */
typedef int32_t mpnas_status;
enum {
  MPNAS_OK = 0,
  MPNAS_E_INVALID_ARGUMENT = -1, /* a NULL handle or pointer, inconsistent sizes */
  MPNAS_E_UNKNOWN_PARAMETER = -2, /* a parameter or enum value the library does not know */
  MPNAS_E_OUT_OF_RANGE = -3,     /* a value outside its documented range */
  MPNAS_E_NO_MEMORY = -4,        /* an allocation failed (allocator returned NULL) */
  MPNAS_E_UNSUPPORTED = -5,      /* not available here, e.g. an ISA this CPU lacks */
  MPNAS_E_IO = -6,               /* a file could not be opened, read or written */
  MPNAS_E_CORRUPT = -7,          /* a file or buffer is malformed (size, checksum, magic) */
  MPNAS_E_VERSION = -8,          /* a file's format version is not supported */
  MPNAS_E_CANCELLED = -9,        /* a progress callback asked to stop */
  MPNAS_E_STATE = -10,           /* the call is not valid in the handle's current state */
  MPNAS_E_INCOMPATIBLE = -11,    /* e.g. a checkpoint from a different search space */
  MPNAS_E_INTERNAL = -12         /* a bug in libmpnas: please report it */
};

/* A short constant English description of a status code ("unknown status" for codes
 * the library does not define). Never NULL. */
MPNAS_API const char *mpnas_status_string(mpnas_status status);

/* ---- Context --------------------------------------------------------------------------
 * A context holds the settings every other handle of the library uses (threads, seed,
 * instruction set, allocator, logging) and the last error message. Create one per
 * thread of work; handles created from a context must not outlive it. */
typedef struct mpnas_context mpnas_context;

/* Allocator hooks. malloc_fn returns NULL on failure; free_fn(user, NULL) must be
 * harmless. The library asks for alignment itself, so plain malloc/free semantics are
 * enough. */
typedef void *(*mpnas_malloc_fn)(void *user, size_t size);
typedef void (*mpnas_free_fn)(void *user, void *ptr);

/* Log levels for the log callback and MPNAS_CONTEXT_LOG_LEVEL. */
enum {
  MPNAS_LOG_NONE = 0,
  MPNAS_LOG_ERROR = 1,
  MPNAS_LOG_WARNING = 2,
  MPNAS_LOG_INFO = 3,
  MPNAS_LOG_DEBUG = 4
};
/* Called with a NUL-terminated message (no trailing newline) valid during the call. */
typedef void (*mpnas_log_fn)(void *user, int32_t level, const char *message);

/* Instruction sets for MPNAS_CONTEXT_ISA. */
enum {
  MPNAS_ISA_AUTO = 0,   /* the fastest this CPU and build support (default) */
  MPNAS_ISA_SCALAR = 1, /* plain C reference kernels: slow, the test oracle */
  MPNAS_ISA_AVX2 = 2,   /* x86-64 AVX2 + FMA */
  MPNAS_ISA_NEON = 3    /* aarch64 NEON */
};

/* Context parameters, set with mpnas_context_set_int and read with
 * mpnas_context_get_int. */
typedef enum mpnas_context_param {
  /* Worker threads for kernels (used when built with OpenMP; 1 otherwise).
   * Range 0..1024, default 1; 0 means one per available processor. Results are
   * deterministic for a given thread count. */
  MPNAS_CONTEXT_THREADS = 1,
  /* Seed of every random stream the library draws from (initialisation, sampling,
   * augmentation). Any 64-bit value, default 0. */
  MPNAS_CONTEXT_SEED = 2,
  /* Requested instruction set, one of MPNAS_ISA_*; default MPNAS_ISA_AUTO. Asking for
   * an ISA the CPU or this build cannot run returns MPNAS_E_UNSUPPORTED and keeps the
   * previous setting. */
  MPNAS_CONTEXT_ISA = 3,
  /* Read-only: the ISA actually in use (MPNAS_ISA_SCALAR, _AVX2 or _NEON). */
  MPNAS_CONTEXT_ISA_ACTIVE = 4,
  /* Most verbose level passed to the log callback, MPNAS_LOG_NONE..MPNAS_LOG_DEBUG;
   * default MPNAS_LOG_WARNING. */
  MPNAS_CONTEXT_LOG_LEVEL = 5,
  /* Read-only: 1 if this build uses OpenMP, else 0. */
  MPNAS_CONTEXT_OPENMP = 6
} mpnas_context_param;

/* Create a context with the default settings and the C library's malloc/free. */
MPNAS_API mpnas_status mpnas_context_create(mpnas_context **out);
/* Create a context whose every allocation goes through the given hooks (both non-NULL).
 * `user` is passed back to them untouched. */
MPNAS_API mpnas_status mpnas_context_create_with_allocator(mpnas_context **out,
                                                           mpnas_malloc_fn malloc_fn,
                                                           mpnas_free_fn free_fn,
                                                           void *user);
/* Free a context. Every handle created from it must have been freed first. */
MPNAS_API void mpnas_context_free(mpnas_context *ctx);

MPNAS_API mpnas_status mpnas_context_set_int(mpnas_context *ctx, int32_t param,
                                             int64_t value);
MPNAS_API mpnas_status mpnas_context_get_int(const mpnas_context *ctx, int32_t param,
                                             int64_t *value);

/* Install (or with fn == NULL remove) the log callback. */
MPNAS_API mpnas_status mpnas_context_set_log_callback(mpnas_context *ctx, mpnas_log_fn fn,
                                                      void *user);

/* The message of the last failing call made with this context (or any handle created
 * from it), "" when none. Owned by the context, valid until the next call with it.
 * With ctx == NULL: a constant message saying so. */
MPNAS_API const char *mpnas_context_last_error(const mpnas_context *ctx);
/* The status of that last failing call, MPNAS_OK when none. */
MPNAS_API mpnas_status mpnas_context_last_status(const mpnas_context *ctx);
/* Forget the last error. */
MPNAS_API void mpnas_context_clear_error(mpnas_context *ctx);

/* 1 if this CPU and this build can run the given MPNAS_ISA_* value, else 0. */
MPNAS_API int32_t mpnas_isa_supported(int32_t isa);

#ifdef __cplusplus
}
#endif
#endif /* MPNAS_H */
