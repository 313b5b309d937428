/* test_alloc.c - allocation through a context: alignment, and the default allocator's
 * transparent-huge-page advice on large blocks (common.h: mpnas__huge_page_advice), read
 * back from the kernel's own account of the mapping (/proc/self/smaps, "THPeligible").
 * Where the system leaves huge pages to the program (THP "madvise", Debian's default), a
 * large block from a default context is eligible and one from a caller's allocator, or a
 * small one, is not; under "always" every block is. Where advised memory is not eligible
 * ("never", or qemu-user, which ignores the advice) the effect is not checked, and the
 * test says so. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/common.h"

/* The system's THP mode: the bracketed word of the sysfs file, or "" when unknown. */
static void thp_mode(char *mode, size_t cap) {
  mode[0] = '\0';
  FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
  if (f == NULL) return;
  char line[256];
  if (fgets(line, sizeof line, f) != NULL) {
    char *a = strchr(line, '['), *b = a ? strchr(a, ']') : NULL;
    if (a && b && (size_t)(b - a) < cap) {
      memcpy(mode, a + 1, (size_t)(b - a - 1));
      mode[b - a - 1] = '\0';
    }
  }
  fclose(f);
}

/* THPeligible of the mapping that holds address p: 0 or 1, -1 when not found. */
static int thp_eligible(const void *p) {
  FILE *f = fopen("/proc/self/smaps", "r");
  if (f == NULL) return -1;
  char line[512];
  int inside = 0, found = -1;
  uintptr_t a = (uintptr_t)p;
  while (fgets(line, sizeof line, f) != NULL) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
      inside = a >= lo && a < hi;
      continue;
    }
    int v;
    if (inside && sscanf(line, "THPeligible: %d", &v) == 1) {
      found = v;
      break;
    }
  }
  fclose(f);
  return found;
}

static void *plain_malloc(void *user, size_t size) {
  (void)user;
  return malloc(size);
}
static void plain_free(void *user, void *ptr) {
  (void)user;
  free(ptr);
}

/* An address inside the block's whole 2 MB pages, where the advice applies. */
static const void *inside_huge(const void *p) {
  const uintptr_t page = (uintptr_t)2 << 20;
  return (const void *)(((uintptr_t)p + page - 1) & ~(page - 1));
}

static void test_alignment(void) {
  mpnas_context *ctx = NULL;
  CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
  size_t sizes[] = {0, 1, 63, 64, 65, 4097, (size_t)9 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    unsigned char *p = mpnas__malloc(ctx, sizes[i]);
    CHECK(p != NULL);
    CHECK((uintptr_t)p % MPNAS__ALIGN == 0);
    if (sizes[i] > 0) memset(p, 1, sizes[i]);
    mpnas__free(ctx, p);
  }
  mpnas__huge_page_advice(NULL, (size_t)64 << 20); /* nothing to advise: no effect */
  mpnas_context_free(ctx);
}

static void test_huge_page_advice(void) {
  char mode[32];
  thp_mode(mode, sizeof mode);
  const size_t big = (size_t)16 << 20, small = (size_t)1 << 20;
  mpnas_context *def = NULL, *own = NULL;
  CHECK_EQ_INT(mpnas_context_create(&def), MPNAS_OK);
  CHECK_EQ_INT(mpnas_context_create_with_allocator(&own, plain_malloc, plain_free, NULL),
               MPNAS_OK);
  unsigned char *b = mpnas__malloc(def, big), *s = mpnas__malloc(def, small);
  unsigned char *o = mpnas__malloc(own, big), *control = malloc(big);
  CHECK(b != NULL && s != NULL && o != NULL && control != NULL);
  if (b && s && o && control) {
    /* Does this system honour the advice at all? ("never" does not, nor does an
     * emulator such as qemu-user, which accepts madvise and ignores it.) */
    mpnas__huge_page_advice(control, big);
    memset(control, 1, big);
    memset(b, 1, big);
    memset(s, 1, small);
    memset(o, 1, big);
    int ec = thp_eligible(inside_huge(control)), eb = thp_eligible(inside_huge(b));
    int es = thp_eligible(s), eo = thp_eligible(inside_huge(o));
    if (ec != 1) {
      printf("    (THP mode \"%s\", advised memory not eligible: the advice's effect is not "
             "checked here)\n", mode);
    } else {
      CHECK_EQ_INT(eb, 1); /* the default allocator's large block: advised */
      if (strcmp(mode, "madvise") == 0) {
        CHECK_EQ_INT(eo, 0); /* a caller's allocator: left alone */
        CHECK(es != 1);      /* a small block: left alone (-1: on the heap, no own mapping) */
      }
    }
  }
  free(control);
  mpnas__free(def, b);
  mpnas__free(def, s);
  mpnas__free(own, o);
  mpnas_context_free(def);
  mpnas_context_free(own);
}

int main(void) {
  RUN(test_alignment);
  RUN(test_huge_page_advice);
  return check_finish();
}
