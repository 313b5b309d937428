/* export.c - `mpnas export`: one domain's path as ONNX (the library writes it,
 * mpnas_model_export_onnx), and the model's bytes as a C array in a header, so that a
 * program can carry its model without a file (examples/embedded_model.c). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Names an array of the header cannot take: C's keywords (C11), what <stddef.h> (which
 * the header includes) defines, and main. */
static int c_keyword(const char *s) {
  static const char *const words[] = {
      "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
      "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
      "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch",
      "typedef", "union", "unsigned", "void", "volatile", "while", "bool", "true", "false",
      "size_t", "ptrdiff_t", "wchar_t", "max_align_t", "NULL", "offsetof", "main"};
  for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
    if (strcmp(s, words[i]) == 0) return 1;
  return 0;
}

/* The array's name: the header's file name without folders and extension, as a C
 * identifier ("models/digits-v2.h" -> digits_v2), "model_" in front when it would not
 * start with a letter (names starting with '_' are the implementation's) or would be a
 * name c_keyword lists ("if.h" -> model_if, "size_t.h" -> model_size_t). */
static void array_name(const char *file, char *name, size_t cap) {
  const char *base = strrchr(file, '/');
  base = base ? base + 1 : file;
  int n = isalpha((unsigned char)base[0]) ? 0 : snprintf(name, cap, "model_");
  for (const char *p = base; *p && *p != '.' && (size_t)n + 1 < cap; p++)
    name[n++] = isalnum((unsigned char)*p) ? *p : '_';
  name[n] = 0;
  if (c_keyword(name) && strlen(name) + 7 < cap) {
    memmove(name + 6, name, strlen(name) + 1);
    memcpy(name, "model_", 6);
  }
}

static int write_c_array(mpnas_context *ctx, const mpnas_model *model, const char *file) {
  size_t size = 0;
  mpnas_status st = mpnas_model_save_buffer(model, NULL, 0, &size);
  unsigned char *bytes = st == MPNAS_OK ? malloc(size) : NULL;
  if (st == MPNAS_OK && bytes == NULL) {
    cli_error("out of memory");
    return EXIT_LIBRARY;
  }
  if (st == MPNAS_OK) st = mpnas_model_save_buffer(model, bytes, size, &size);
  if (st != MPNAS_OK) {
    free(bytes);
    return cli_library_error(ctx, st, "the model's bytes");
  }
  char name[128], guard[160];
  array_name(file, name, sizeof name);
  size_t g = 0;
  for (const char *p = name; *p && g + 3 < sizeof guard; p++) guard[g++] = (char)toupper((unsigned char)*p);
  memcpy(guard + g, "_H", 3);
  cli_file cf;
  FILE *f = cli_file_open(&cf, file, 0);
  if (f == NULL) {
    free(bytes);
    return EXIT_DATA;
  }
  /* The paths stay out of the comment: one could hold its end. */
  fprintf(f,
          "/* Written by `mpnas export MODEL --c-array FILE.h` (libmpnas %s): the model's %zu\n"
          " * bytes, for mpnas_model_load_buffer(ctx, %s, %s_size, &model). */\n"
          "#ifndef %s\n#define %s\n\n#include <stddef.h>\n\n"
          "static const unsigned char %s[] = {",
          mpnas_version_string(), size, name, name, guard, guard, name);
  for (size_t i = 0; i < size; i++) fprintf(f, "%s0x%02x,", i % 12 ? " " : "\n  ", bytes[i]);
  fprintf(f, "\n};\nstatic const size_t %s_size = sizeof %s;\n\n#endif\n", name, name);
  free(bytes);
  return cli_file_commit(&cf);
}

int cli_export(cli_options *o) {
  char file[4096], dir[4096], name[CLI_NAME_CAP];
  const char *path;
  if (o->npositional != 1 || (!o->onnx && !o->c_array) || (o->onnx && o->ndomains != 1) ||
      (!o->onnx && o->ndomains)) {
    cli_error("mpnas export MODEL [--domain NAME --onnx FILE] [--c-array FILE.h]: a model, "
              "and --onnx with one --domain and/or --c-array expected");
    return EXIT_USAGE;
  }
  if (o->onnx && cli_domain_arg(o->domains[0], name, &path)) return EXIT_USAGE;
  mpnas_context *ctx = NULL;
  mpnas_model *model = NULL;
  int rc = EXIT_LIBRARY;
  if (mpnas_context_create(&ctx) != MPNAS_OK) cli_error("cannot create a context");
  else rc = cli_model_open(ctx, o->positional[0], &model, file, dir, sizeof file);
  if (rc == 0 && o->onnx) {
    int32_t domain = cli_model_domain(model, name);
    mpnas_status st = domain < 0 ? MPNAS_OK : mpnas_model_export_onnx(model, domain, o->onnx);
    if (domain < 0) rc = EXIT_USAGE;
    else if (st != MPNAS_OK) rc = cli_library_error(ctx, st, o->onnx);
  }
  if (rc == 0 && o->c_array) rc = write_c_array(ctx, model, o->c_array);
  mpnas_model_free(model);
  mpnas_context_free(ctx);
  return rc;
}
