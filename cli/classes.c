/* classes.c - class names next to a model, and JSON text.
 *
 * The model file (docs/MODEL-FORMAT.md) keeps each domain's class count but no class
 * names, so a run keeps them beside its model in RUN/classes.json:
 *
 *   {
 *     "flowers": ["daisy", "rose", "tulip"],
 *     "digits": ["0", "1", "2"]
 *   }
 *
 * in label order. The reader takes exactly that shape (an object of arrays of strings). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void cli_json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
    else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
    else fputc(*p, f);
  }
  fputc('"', f);
}

void cli_json_number(FILE *f, double v) {
  if (isfinite(v)) fprintf(f, "%.6g", v);
  else fputs("null", f);
}

int cli_classes_write(const char *file, const cli_domain *doms, int n) {
  cli_file cf;
  FILE *f = cli_file_open(&cf, file, 0);
  if (!f) return EXIT_DATA;
  fputs("{\n", f);
  for (int d = 0; d < n; d++) {
    fputs("  ", f);
    cli_json_string(f, doms[d].name);
    fputs(": [", f);
    for (int32_t c = 0; c < doms[d].classes; c++) {
      if (c) fputs(", ", f);
      cli_json_string(f, doms[d].class_names[c]);
    }
    fputs(d + 1 < n ? "],\n" : "]\n", f);
  }
  fputs("}\n", f);
  return cli_file_commit(&cf);
}

void cli_names_free(char **names, int32_t count) {
  for (int32_t i = 0; names && i < count; i++) free(names[i]);
  free(names);
}

/* ---- Reading ------------------------------------------------------------------------ */

typedef struct reader {
  const char *p;
} reader;

static void skip_space(reader *r) {
  while (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t') r->p++;
}

static int expect(reader *r, char c) {
  skip_space(r);
  if (*r->p != c) return 1;
  r->p++;
  return 0;
}

/* A JSON string into a malloc'ed UTF-8 string (\uXXXX of the basic plane only). */
static char *read_string(reader *r) {
  if (expect(r, '"')) return NULL;
  size_t cap = strlen(r->p) + 1, n = 0;
  char *s = malloc(cap);
  while (s && *r->p && *r->p != '"') {
    unsigned c = (unsigned char)*r->p++;
    if (c == '\\') {
      char e = *r->p;
      if (!e) goto bad;
      r->p++;
      const char *simple = strchr("\"\\/bfnrt", e), *to = "\"\\/\b\f\n\r\t";
      if (e && simple) {
        s[n++] = to[simple - "\"\\/bfnrt"];
        continue;
      }
      unsigned u = 0;
      if (e != 'u') goto bad;
      for (int k = 0; k < 4; k++) {
        char h = *r->p;
        if (!h) goto bad;
        r->p++;
        const char *digit = strchr("0123456789abcdef", h >= 'A' && h <= 'F' ? h - 'A' + 'a' : h);
        if (!digit) goto bad;
        u = u * 16 + (unsigned)(digit - "0123456789abcdef");
      }
      if (u == 0 || (u >= 0xD800 && u <= 0xDFFF)) goto bad;
      if (u < 0x80) s[n++] = (char)u;
      else if (u < 0x800) {
        s[n++] = (char)(0xC0 | u >> 6);
        s[n++] = (char)(0x80 | (u & 0x3F));
      } else {
        s[n++] = (char)(0xE0 | u >> 12);
        s[n++] = (char)(0x80 | (u >> 6 & 0x3F));
        s[n++] = (char)(0x80 | (u & 0x3F));
      }
      continue;
    }
    s[n++] = (char)c;
  }
  if (!s || *r->p != '"') goto bad;
  r->p++;
  s[n] = 0;
  return s;
bad:
  free(s);
  return NULL;
}

/* An array of strings; *names malloc'ed. */
static int read_names(reader *r, char ***names, int32_t *count) {
  *names = NULL;
  *count = 0;
  if (expect(r, '[')) return 1;
  skip_space(r);
  if (*r->p == ']') {
    r->p++;
    return 0;
  }
  for (;;) {
    if (*count % 64 == 0) {
      char **grown = realloc(*names, sizeof(char *) * (size_t)(*count + 64));
      if (!grown) return 1;
      *names = grown;
    }
    if (!((*names)[*count] = read_string(r))) return 1;
    (*count)++;
    skip_space(r);
    if (*r->p == ']') {
      r->p++;
      return 0;
    }
    if (expect(r, ',')) return 1;
  }
}

int cli_classes_read(const char *file, const char *domain, char ***names, int32_t *count) {
  *names = NULL;
  *count = 0;
  FILE *f = fopen(file, "rb");
  if (!f) return 0; /* no class names: labels are shown by number */
  char *text = NULL;
  long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
  if (size >= 0 && size < (1L << 28) && fseek(f, 0, SEEK_SET) == 0 &&
      (text = malloc((size_t)size + 1)) != NULL && fread(text, 1, (size_t)size, f) == (size_t)size)
    text[size] = 0;
  else {
    free(text);
    text = NULL;
  }
  fclose(f);
  if (!text) {
    cli_error("cannot read %s", file);
    return EXIT_DATA;
  }
  reader r = {text};
  int bad = expect(&r, '{');
  skip_space(&r);
  if (!bad && *r.p == '}') r.p++;
  else
    while (!bad) {
      char *key = read_string(&r), **list = NULL;
      int32_t n = 0;
      bad = !key || expect(&r, ':') || read_names(&r, &list, &n);
      if (!bad && strcmp(key, domain) == 0 && !*names) {
        *names = list;
        *count = n;
      } else {
        cli_names_free(list, n);
      }
      free(key);
      if (bad) break;
      skip_space(&r);
      if (*r.p == '}') {
        r.p++;
        break;
      }
      bad = expect(&r, ',');
    }
  if (!bad) skip_space(&r);
  if (bad || *r.p) {
    cli_error("%s: not a class-name file (an object of string arrays expected)", file);
    cli_names_free(*names, *count);
    *names = NULL;
    *count = 0;
    free(text);
    return EXIT_DATA;
  }
  free(text);
  return 0;
}
