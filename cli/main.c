/* main.c - `mpnas`, the command-line program of libmpnas: search a multi-path model for
 * folders of images, train it, evaluate it, classify images with it (docs/CLI.md).
 *
 *   mpnas search --domain NAME=PATH ... --out RUN   search + train + test, into RUN
 *   mpnas train RUN                                 (re)train the model of a run
 *   mpnas eval MODEL [--domain NAME=PATH ...]       top-1 on the test splits
 *   mpnas predict MODEL --domain NAME FILE|DIR...   classes and probabilities per image
 *   mpnas info MODEL                                domains, classes, paths, costs
 *   mpnas figures MODEL                             the SVG figures
 *   mpnas params                                    every --set parameter
 *   mpnas export MODEL [--domain NAME --onnx FILE] [--c-array FILE.h]
 *                                                   ONNX of a domain; the model as C */
#include <string.h>

#include "cli.h"

typedef struct command {
  const char *name;
  unsigned bit;
  int (*run)(cli_options *o);
  const char *usage, *about;
} command;

static const command COMMANDS[] = {
    {"search", CMD_SEARCH, cli_search, "mpnas search --domain NAME=PATH [--domain ...] [options] --out RUN",
     "Search one path per domain through the supernet, build the multi-path model from the\n"
     "paths, train it and test it on each domain's test split. RUN receives run.conf (the\n"
     "settings), search.ckpt, model.mpnas, classes.json, search.jsonl and train.jsonl (metrics),\n"
     "architecture.svg and jaccard.svg. Ctrl-C saves a checkpoint; --resume continues it."},
    {"train", CMD_TRAIN, cli_train, "mpnas train RUN [--set train.KEY=VALUE ...] [--resume]",
     "Train the model of a run again from scratch, from its finished search (e.g. with other\n"
     "training settings, which the run then records), or continue an interrupted training\n"
     "with --resume. Writes RUN/model.mpnas and the rest as search does."},
    {"eval", CMD_EVAL, cli_eval, "mpnas eval MODEL [--domain NAME=PATH ...]",
     "Top-1 accuracy and loss of each domain on its test split. MODEL is a model file or a\n"
     "run folder; without --domain, the run's domains (from run.conf beside the model), with\n"
     "the run's seed and test fraction, so a folder without test/ gives the same test images."},
    {"predict", CMD_PREDICT, cli_predict, "mpnas predict MODEL --domain NAME [--top K] FILE|DIR...",
     "Classify image files with one domain of a model: one line per file,\n"
     "FILE<TAB>CLASS PROBABILITY<TAB>... with the most probable class first. A folder\n"
     "stands for its files (sorted by name; not its sub-folders or hidden files)."},
    {"info", CMD_INFO, cli_info, "mpnas info MODEL",
     "The model's input, domains, classes, paths, parameters, MACs, node sharing and the\n"
     "Jaccard similarity of the domains' node sets."},
    {"figures", CMD_FIGURES, cli_figures, "mpnas figures MODEL [--out PREFIX] [--title TEXT]",
     "Write the multi-path architecture and the Jaccard map as SVG (docs/FIGURES.md):\n"
     "architecture.svg and jaccard.svg beside the model, or PREFIX-architecture.svg and\n"
     "PREFIX-jaccard.svg."},
    {"params", CMD_PARAMS, cli_params, "mpnas params [--preset NAME] [--names]",
     "Every parameter --set can change: its key, type, default and values."},
    {"export", CMD_EXPORT, cli_export, "mpnas export MODEL [--domain NAME --onnx FILE] [--c-array FILE.h]",
     "Write one domain's path as an ONNX model (float32 NCHW input \"input\" of raw pixel\n"
     "values, output \"logits\"; docs/EXPORT.md), and/or the model's bytes as a C array in a\n"
     "header, to build a model into a program (mpnas_model_load_buffer)."},
    {"quantize", CMD_QUANTIZE, cli_quantize,
     "mpnas quantize MODEL -o OUT [--calibration N] [--int8-only] [--domain NAME=PATH ...]",
     "Quantise a trained model to int8 (docs/QUANTIZATION.md), calibrating each domain on its\n"
     "training images (the run's domains from run.conf beside the model, or --domain), and\n"
     "write it to OUT: float and int8 forms, or with --int8-only the int8 form alone (a\n"
     "deployment file about 4x smaller). eval and predict run it with --int8."},
};
#define NUM_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

static void usage(FILE *f) {
  fprintf(f, "usage: mpnas COMMAND [options]   (mpnas COMMAND --help for one command)\n\ncommands:\n");
  for (size_t i = 0; i < NUM_COMMANDS; i++) fprintf(f, "  %s\n", COMMANDS[i].usage);
  fprintf(f,
          "\nexit status: 0 done, 1 usage (options, settings), 2 data (images, folders, model\n"
          "files), 3 library error, 128+N stopped by signal N after saving a checkpoint\n"
          "(130: Ctrl-C). docs/CLI.md has the details.\n");
}

static void version(void) {
  const char *formats = cli_image_formats(), *missing = cli_image_missing_formats();
  printf("mpnas (libmpnas %s)\nimage formats: %s%sIDX folders", mpnas_version_string(), formats,
         formats[0] ? " " : "");
  if (missing[0]) printf("; not built with: %s", missing);
  printf("\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return EXIT_USAGE;
  }
  const char *name = argv[1];
  if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
    if (argc < 3) {
      usage(stdout);
      return EXIT_OK;
    }
    argv[1] = argv[2];
    argv[2] = "--help";
    name = argv[1];
  }
  if (strcmp(name, "--version") == 0) {
    version();
    return EXIT_OK;
  }
  for (size_t i = 0; i < NUM_COMMANDS; i++) {
    const command *c = &COMMANDS[i];
    if (strcmp(c->name, name) != 0) continue;
    cli_options o;
    cli_options_init(&o, c->bit);
    int rc = cli_options_parse(&o, argc, argv, 2);
    if (rc == 0 && o.help) {
      printf("usage: %s\n\n%s\n\n", c->usage, c->about);
      cli_options_help(c->bit);
    } else if (rc == 0) {
      rc = c->run(&o);
    }
    cli_options_free(&o);
    return rc;
  }
  cli_error("unknown command %s", name);
  usage(stderr);
  return EXIT_USAGE;
}
