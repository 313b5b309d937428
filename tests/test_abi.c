/* test_abi.c - the shared library exports exactly the symbols in
 * tests/exported-symbols.txt (tests/check_symbols.sh does the comparison with nm -D),
 * and the soname follows the major version. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "mpnas.h"

static const char *libdir(void) {
  const char *d = getenv("LIBMPNAS_DIR");
  return (d && *d) ? d : "lib";
}

static int run(const char *cmd, char *out, size_t cap) {
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  size_t n = fread(out, 1, cap - 1, p);
  out[n] = '\0';
  return pclose(p);
}

static void test_exported_symbols(void) {
  char cmd[512], out[8192];
  snprintf(cmd, sizeof cmd, "sh tests/check_symbols.sh %s/libmpnas.so 2>&1", libdir());
  int rc = run(cmd, out, sizeof out);
  if (rc != 0) printf("%s", out);
  CHECK(rc == 0);
}

static void test_soname(void) {
  char cmd[512], out[8192], want[64];
  snprintf(cmd, sizeof cmd, "readelf -d %s/libmpnas.so 2>&1", libdir());
  CHECK(run(cmd, out, sizeof out) == 0);
  snprintf(want, sizeof want, "[libmpnas.so.%d]", MPNAS_VERSION_MAJOR);
  CHECK_MSG(strstr(out, want) != NULL, "soname %s not found in readelf output", want);
}

int main(void) {
  RUN(test_exported_symbols);
  RUN(test_soname);
  return check_finish();
}
